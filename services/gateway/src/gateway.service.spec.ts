import { parseEnv } from '@imagebind-llm/config';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { float32Tensor } from '@imagebind-llm/grpc-kit';
import { createLogger, MemoryLog } from '@imagebind-llm/observability';
import { commonV1, decoderV1, type gatewayV1 } from '@imagebind-llm/proto';
import { domainRejectionOf } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import type { HopContext, PlatformBackends } from '@imagebind-llm/serving/platform';
import { gatewayEnvSchema } from './env.schema';
import { GatewayService } from './gateway.service';

/** Backends whose decoder refuses every stream with OVERLOADED; counts the streams asked for. */
function overloadedBackends(mode: PlatformBackends['mode']): {
  backends: PlatformBackends;
  streams: () => number;
} {
  let streams = 0;
  const backends: PlatformBackends = {
    mode,
    encoder: () => ({
      encode: (request) =>
        Promise.resolve({
          embeddings: request.inputs.map(() => ({
            embedding: float32Tensor(new Float32Array(1024).fill(0.01), [1024]),
          })),
          model: { name: 'text', version: '1' },
        }),
    }),
    retriever: {
      search: () => Promise.reject(new Error('the cache is off in these tests')),
      getCollection: () => Promise.reject(new Error('unused')),
    },
    bind: {
      project: () =>
        Promise.resolve({
          visualQueries: float32Tensor(new Float32Array(4096), [1, 4096]),
          model: { name: 'bind', version: '1' },
        }),
    },
    decoder: {
      tokenize: () => Promise.resolve({ tokenIds: [1, 2, 3] } as decoderV1.TokenizeResponse),
      // eslint-disable-next-line require-yield -- refuses before the first token
      generate: async function* () {
        streams++;
        await Promise.resolve();
        throw new DomainError(ErrorCode.Overloaded, 'the decoder is at capacity; retry after 1 s');
      },
      getModelStatus: () => Promise.reject(new Error('unused')),
    },
    close: () => Promise.resolve(),
  };
  return { backends, streams: () => streams };
}

const request: gatewayV1.GenerateRequest = {
  inputs: [
    { modality: commonV1.Modality.MODALITY_TEXT, source: { $case: 'text', value: 'A dog.' }, mediaType: '' },
  ],
  instruction: 'Describe it.',
  input: '',
  cache: { enabled: false },
};

async function generate(
  mode: PlatformBackends['mode'],
): Promise<{ error: DomainError; streams: number; log: MemoryLog }> {
  const log = new MemoryLog();
  const ctx: HopContext = {
    requestId: 'r1',
    deadline: Infinity,
    signal: new AbortController().signal,
    logger: createLogger({ service: 'test', level: 'info', destination: log }),
  };
  const { backends, streams } = overloadedBackends(mode);
  const service = new GatewayService(
    parseEnv('gateway', gatewayEnvSchema, { GATEWAY_DECODER_RESUME_ATTEMPTS: '2' }),
    backends,
  );
  const error = await domainRejectionOf(
    (async () => {
      for await (const chunk of service.generate(request, ctx)) void chunk;
    })(),
  );
  return { error, streams: streams(), log };
}

describe('GatewayService decoder resumes', () => {
  it('standalone: an overloaded decoder is not "resumed" on itself; the client gets OVERLOADED at once', async () => {
    const { error, streams, log } = await generate('standalone');
    expect(error.code).toBe(ErrorCode.Overloaded);
    expect(streams).toBe(1);
    expect(log.lines.filter((l) => l['event'] === 'decoder.resume')).toEqual([]);
  });

  it('distributed: the stream is resumed on another replica up to GATEWAY_DECODER_RESUME_ATTEMPTS times', async () => {
    const { error, streams, log } = await generate('distributed');
    expect(error.code).toBe(ErrorCode.Overloaded);
    expect(streams).toBe(3);
    expect(log.lines.filter((l) => l['event'] === 'decoder.resume')).toHaveLength(2);
  });
});

describe('GatewayService server-side faults', () => {
  const ctx = (): HopContext => ({
    requestId: 'r1',
    deadline: Infinity,
    signal: new AbortController().signal,
    logger: createLogger({ service: 'test', level: 'info', destination: new MemoryLog() }),
  });
  const withRetriever = (search: PlatformBackends['retriever']['search']): GatewayService => {
    const { backends } = overloadedBackends('distributed');
    return new GatewayService(parseEnv('gateway', gatewayEnvSchema, {}), {
      ...backends,
      retriever: { ...backends.retriever, search },
    });
  };
  // The cache's default settings: the visual cache is asked for q′ like a cached answer asks for it.
  const embedWithCache: gatewayV1.EmbedRequest = { inputs: request.inputs, includeFused: false, cache: {} };

  it.each([
    ['a missing collection', DomainError.notFound('collection "visual-cache" does not exist')],
    [
      'a collection of another dimension',
      new DomainError(ErrorCode.FailedPrecondition, 'collection "visual-cache" holds 512-d vectors'),
    ],
  ])('answers %s behind the visual cache with 503 and the way around it', async (_name, cause) => {
    const error = await domainRejectionOf(
      withRetriever(() => Promise.reject(cause)).embed(embedWithCache, ctx()),
    );
    expect(error.code).toBe(ErrorCode.DependencyUnavailable);
    expect(error.httpStatus).toBe(503);
    expect(error.message).toContain(cause.message);
    expect(error.message).toContain('imagebind.cache.enabled: false');
  });

  it('answers an empty visual cache with 503, not a client error', async () => {
    const service = withRetriever(() => Promise.resolve({ results: [{ hits: [] }] }));
    const error = await domainRejectionOf(service.embed(embedWithCache, ctx()));
    expect(error.code).toBe(ErrorCode.DependencyUnavailable);
    expect(error.message).toContain('collection is empty');
  });

  it('answers a modality this deployment has no encoder for with 501, naming the input', async () => {
    const { backends } = overloadedBackends('distributed');
    const service = new GatewayService(parseEnv('gateway', gatewayEnvSchema, {}), {
      ...backends,
      encoder: () => undefined,
    });
    const error = await domainRejectionOf(
      (async () => {
        for await (const chunk of service.generate(request, ctx())) void chunk;
      })(),
    );
    expect(error.code).toBe(ErrorCode.NotImplemented);
    expect(error.httpStatus).toBe(501);
    expect(error.details.field).toBe('inputs[0].modality');
  });
});
