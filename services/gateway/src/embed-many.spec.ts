import { status as GrpcStatus } from '@grpc/grpc-js';
import { parseEnv } from '@imagebind-llm/config';
import { DomainError, ErrorCode, INTERNAL_MESSAGE } from '@imagebind-llm/errors';
import { float32Tensor, toGrpcStatus } from '@imagebind-llm/grpc-kit';
import { createLogger, MemoryLog } from '@imagebind-llm/observability';
import { commonV1, type gatewayV1 } from '@imagebind-llm/proto';
import type { HopContext, PlatformBackends } from '@imagebind-llm/serving/platform';
import { domainRejectionOf } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { gatewayEnvSchema } from './env.schema';
import { GatewayService } from './gateway.service';

/**
 * Backends whose text encoder embeds "n <k>" as a vector filled with k, answers "busy" with
 * OVERLOADED (retry after 250 ms) and "boom" with a plain Error (a bug). Counts encoder calls.
 */
function textBackends(): { backends: PlatformBackends; encodes: () => number } {
  let encodes = 0;
  const unused = (): Promise<never> => Promise.reject(new Error('unused in these tests'));
  const backends: PlatformBackends = {
    mode: 'distributed',
    encoder: () => ({
      encode: async (request) => {
        encodes++;
        await Promise.resolve();
        return {
          embeddings: request.inputs.map((input) => {
            const value = input.source?.$case === 'text' ? input.source.value : '';
            if (value === 'busy') throw DomainError.overloaded('the text encoder is at capacity', 250);
            if (value === 'boom') throw new Error('a bug in the encoder');
            return { embedding: float32Tensor(new Float32Array(1024).fill(Number(value.slice(2))), [1024]) };
          }),
          model: { name: 'text', version: '1' },
        };
      },
    }),
    retriever: { search: unused, getCollection: unused },
    bind: { project: unused },
    decoder: {
      tokenize: unused,
      // eslint-disable-next-line require-yield -- Generate is not part of these tests
      generate: async function* () {
        await unused();
      },
      getModelStatus: unused,
    },
    close: () => Promise.resolve(),
  };
  return { backends, encodes: () => encodes };
}

function service(env: Record<string, string> = {}): { gateway: GatewayService; encodes: () => number } {
  const { backends, encodes } = textBackends();
  return { gateway: new GatewayService(parseEnv('gateway', gatewayEnvSchema, env), backends), encodes };
}

function context(log = new MemoryLog()): HopContext {
  return {
    requestId: 'req-many-1',
    deadline: Infinity,
    signal: new AbortController().signal,
    logger: createLogger({ service: 'test', level: 'info', destination: log }),
  };
}

const embedText = (value: string, weight?: number): gatewayV1.EmbedRequest => ({
  inputs: [
    {
      modality: commonV1.Modality.MODALITY_TEXT,
      source: { $case: 'text', value },
      mediaType: '',
      ...(weight === undefined ? {} : { weight }),
    },
  ],
  includeFused: true,
});

/** The EmbedError the gateway's gRPC handler would have made of a failed Embed (its status). */
async function embedFailure(
  gateway: GatewayService,
  request: gatewayV1.EmbedRequest,
): Promise<gatewayV1.EmbedError> {
  const error = await gateway.embed(request, context()).then(
    () => {
      throw new Error('expected Embed to fail');
    },
    (e: unknown) => e,
  );
  const status = toGrpcStatus(error, 'req-many-1');
  const trailer = (key: string): string => String(status.metadata?.get(key)[0] ?? '');
  const retryAfter = trailer('ibllm-retry-after-ms');
  return {
    code: trailer('ibllm-error-code'),
    message: status.details!,
    field: trailer('ibllm-error-field'),
    ...(retryAfter === '' ? {} : { retryAfterMs: Number(retryAfter) }),
    statusCode: status.code!,
  };
}

describe('GatewayService.embedMany', () => {
  it('answers each request as Embed would, in order; a bad one fails alone', async () => {
    const { gateway } = service();
    const log = new MemoryLog();
    const requests = [
      embedText('n 1'),
      embedText('n 2', 0), // invalid weight
      embedText('busy'),
      embedText('boom'),
      embedText('n 5'),
    ];
    const { results } = await gateway.embedMany({ requests }, context(log));
    expect(results.map((r) => r.result?.$case)).toEqual(['response', 'error', 'error', 'error', 'response']);
    // The good ones carry exactly Embed's response.
    for (const i of [0, 4]) {
      expect(results[i]!.result).toEqual({
        $case: 'response',
        value: await gateway.embed(requests[i]!, context()),
      });
    }
    const errors = results.map((r) => (r.result?.$case === 'error' ? r.result.value : undefined));
    expect(errors[1]).toEqual({
      code: ErrorCode.InvalidInput,
      message: 'inputs[0].weight: must be a positive number (unset means 1), got 0',
      field: 'inputs[0].weight',
      statusCode: GrpcStatus.INVALID_ARGUMENT,
    });
    expect(errors[2]).toEqual({
      code: ErrorCode.Overloaded,
      message: 'the text encoder is at capacity',
      field: '',
      retryAfterMs: 250,
      statusCode: GrpcStatus.RESOURCE_EXHAUSTED,
    });
    // A bug stays a bug: INTERNAL, the generic message with the request id, the cause logged.
    expect(errors[3]).toEqual({
      code: ErrorCode.Internal,
      message: `${INTERNAL_MESSAGE} (request id req-many-1)`,
      field: '',
      statusCode: GrpcStatus.INTERNAL,
    });
    const logged = log.lines.filter((l) => l['level'] === 'error');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ request: 3, err: { message: 'a bug in the encoder' } });
    // And each error is the status Embed's handler would have answered with.
    for (const i of [1, 2, 3]) expect(errors[i]).toEqual(await embedFailure(gateway, requests[i]!));
  });

  it('runs the requests side by side, so the encoder batcher sees them together', async () => {
    const { gateway, encodes } = service();
    const requests = Array.from({ length: 8 }, (_, i) => embedText(`n ${i}`));
    const { results } = await gateway.embedMany({ requests }, context());
    expect(results).toHaveLength(8);
    expect(encodes()).toBe(8); // one encoder call per request, as Embed makes
  });

  it('refuses an empty call and one over GATEWAY_EMBED_MANY_MAX_REQUESTS, naming the field and the limit', async () => {
    const { gateway, encodes } = service({ GATEWAY_EMBED_MANY_MAX_REQUESTS: '4' });
    const empty = await domainRejectionOf(gateway.embedMany({ requests: [] }, context()));
    expect(empty.code).toBe(ErrorCode.InvalidInput);
    expect(empty.details.field).toBe('requests');
    const tooMany = await domainRejectionOf(
      gateway.embedMany({ requests: Array.from({ length: 5 }, () => embedText('n 1')) }, context()),
    );
    expect(tooMany.code).toBe(ErrorCode.InvalidInput);
    expect(tooMany.details.field).toBe('requests');
    expect(tooMany.message).toBe(
      'requests: 5 requests exceed the limit of 4 per EmbedMany call (GATEWAY_EMBED_MANY_MAX_REQUESTS); split the call',
    );
    expect(encodes()).toBe(0);
    expect(gateway.checkEmbedMany({ requests: Array.from({ length: 4 }, () => embedText('n 1')) })).toBe(4);
  });

  it('defaults to 64 requests per call', () => {
    const { gateway } = service();
    expect(gateway.checkEmbedMany({ requests: Array.from({ length: 64 }, () => embedText('n 1')) })).toBe(64);
    expect(() =>
      gateway.checkEmbedMany({ requests: Array.from({ length: 65 }, () => embedText('n 1')) }),
    ).toThrow(/limit of 64/);
  });
});
