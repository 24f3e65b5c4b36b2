// Precomputed embeddings (issue #17 item 9) without a network: the contract's checks, the REST
// part's checks (paths as the client wrote them), and that the gateway skips the encoder and fuses
// the vector as MODEL_SPEC §1.2 says (L2-normalised and weighted; a fused query used as it is).
import { parseEnv } from '@imagebind-llm/config';
import { fuseEmbeddings } from '@imagebind-llm/domain';
import { ErrorCode } from '@imagebind-llm/errors';
import { float32Tensor } from '@imagebind-llm/grpc-kit';
import { createLogger, MemoryLog } from '@imagebind-llm/observability';
import { commonV1, decoderV1, type gatewayV1 } from '@imagebind-llm/proto';
import { domainErrorOf } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import type { HopContext, PlatformBackends } from '@imagebind-llm/serving/platform';
import { gatewayEnvSchema } from './env.schema';
import { GatewayService } from './gateway.service';
import { EMBEDDING_DIM, validateInputs } from './request-validation';
import { parseChatCompletionRequest, parseEmbeddingsRequest, parseSearchRequest } from './rest';

const { Modality } = commonV1;
const LIMITS = { maxInputs: 8, maxInputBytes: 1 << 20 };
const POLICY = {
  limits: { maxParts: 24, maxPartBytes: 1 << 20, maxBodyBytes: 4 << 20 },
  allowedHosts: [],
  modelId: 'imagebind-llm',
};

/** Distinct values (a ramp with a sign change), scaled: a reordering or a lost value would show. */
function vector(scale = 1, length = EMBEDDING_DIM): Float32Array {
  return Float32Array.from({ length }, (_, i) => (scale * (i - 300)) / 1000);
}

function precomputed(
  v: Float32Array,
  extra: Partial<gatewayV1.MultimodalInput> = {},
  fused = false,
): gatewayV1.MultimodalInput {
  return {
    modality: Modality.MODALITY_UNSPECIFIED,
    mediaType: '',
    ...extra,
    source: { $case: 'embedding', value: { vector: float32Tensor(v, [v.length]), fused } },
  };
}

describe('validateInputs: precomputed embeddings', () => {
  it('accepts [1024] and [1, 1024] float32, with or without a modality, beside media inputs', () => {
    const row = precomputed(vector());
    if (row.source?.$case === 'embedding') row.source.value.vector!.shape = [1, EMBEDDING_DIM];
    expect(() =>
      validateInputs(
        [
          precomputed(vector(), { modality: Modality.MODALITY_AUDIO, weight: 0.3 }),
          row,
          { modality: Modality.MODALITY_TEXT, source: { $case: 'text', value: 'a dog' }, mediaType: '' },
        ],
        LIMITS,
      ),
    ).not.toThrow();
    expect(() => validateInputs([precomputed(vector(), {}, true)], LIMITS)).not.toThrow();
  });

  const cases: [string, gatewayV1.MultimodalInput[], string, RegExp][] = [
    [
      'no vector',
      [{ ...precomputed(vector()), source: { $case: 'embedding', value: { fused: false } } }],
      'inputs[0].embedding.vector',
      /is required/,
    ],
    [
      '512 values',
      [precomputed(vector(1, 512))],
      'inputs[0].embedding.vector.shape',
      /\[1024\].*got \[512\]/,
    ],
    [
      'shape [2, 512]',
      [
        (() => {
          const i = precomputed(vector());
          if (i.source?.$case === 'embedding') i.source.value.vector!.shape = [2, 512];
          return i;
        })(),
      ],
      'inputs[0].embedding.vector.shape',
      /got \[2, 512\]/,
    ],
    [
      'float16 dtype',
      [
        (() => {
          const i = precomputed(vector());
          if (i.source?.$case === 'embedding')
            i.source.value.vector!.dtype = commonV1.DataType.DATA_TYPE_FLOAT16;
          return i;
        })(),
      ],
      'inputs[0].embedding.vector.dtype',
      /FLOAT32/,
    ],
    [
      'bytes short of the shape',
      [
        (() => {
          const i = precomputed(vector());
          if (i.source?.$case === 'embedding') i.source.value.vector!.data = Buffer.alloc(100);
          return i;
        })(),
      ],
      'inputs[0].embedding.vector.data',
      /4096 bytes.*got 100/,
    ],
    [
      'a NaN',
      [precomputed(vector()), precomputed(Float32Array.from(vector(), (v, i) => (i === 17 ? NaN : v)))],
      'inputs[1].embedding.vector.data',
      /value 17 is NaN/,
    ],
    [
      'an Infinity',
      [precomputed(Float32Array.from(vector(), (v, i) => (i === 0 ? -Infinity : v)))],
      'inputs[0].embedding.vector.data',
      /value 0 is -Infinity/,
    ],
    [
      'all zeros',
      [precomputed(new Float32Array(EMBEDDING_DIM))],
      'inputs[0].embedding.vector.data',
      /all zeros/,
    ],
    ['weight 0', [precomputed(vector(), { weight: 0 })], 'inputs[0].weight', /positive/],
    [
      'an unsupported modality',
      [precomputed(vector(), { modality: Modality.MODALITY_DEPTH })],
      'inputs[0].modality',
      /not accepted/,
    ],
    [
      'a fused query beside another input',
      [precomputed(vector()), precomputed(vector(), {}, true)],
      'inputs[1].embedding.fused',
      /only input.*has 2/,
    ],
    [
      'a fused query with a weight',
      [precomputed(vector(), { weight: 1 }, true)],
      'inputs[0].weight',
      /leave weight unset/,
    ],
  ];
  it.each(cases)('refuses %s, naming the field', (_name, inputs, field, message) => {
    const error = domainErrorOf(() => validateInputs(inputs, LIMITS));
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(error.details.field).toBe(field);
    expect(error.message).toMatch(message);
  });
});

describe('REST input_embedding parts', () => {
  const chat = (parts: unknown[]) =>
    parseChatCompletionRequest(
      {
        model: 'imagebind-llm',
        messages: [{ role: 'user', content: [{ type: 'text', text: 'Describe it.' }, ...parts] }],
      },
      POLICY,
    );
  const base64 = (v: Float32Array): string =>
    Buffer.from(float32Tensor(v, [v.length]).data).toString('base64');

  it('numbers and base64 float32 become the same input; weight and fused are passed on', () => {
    const v = vector(14.3);
    const [fromNumbers] = chat([
      { type: 'input_embedding', input_embedding: { embedding: Array.from(v) }, weight: 0.4 },
    ]).request.inputs;
    const [fromBase64] = chat([
      { type: 'input_embedding', input_embedding: { embedding: base64(v) }, weight: 0.4 },
    ]).request.inputs;
    expect(fromNumbers).toEqual(fromBase64);
    expect(fromNumbers).toEqual(precomputed(v, { weight: 0.4 }));
    const [fused] = chat([
      { type: 'input_embedding', input_embedding: { embedding: base64(v), fused: true } },
    ]).request.inputs;
    expect(fused).toEqual(precomputed(v, {}, true));
  });

  it('works in /v1/embeddings imagebind_inputs and /v1/search inputs', () => {
    const part = { type: 'input_embedding', input_embedding: { embedding: Array.from(vector()) } };
    const embed = parseEmbeddingsRequest(
      { model: 'imagebind-llm', input: 'a dog', imagebind_inputs: [part] },
      POLICY,
    );
    expect(embed.request.inputs.map((i) => i.source?.$case)).toEqual(['text', 'embedding']);
    const search = parseSearchRequest({ model: 'imagebind-llm', inputs: [part] }, POLICY);
    expect(search.request.inputs[0]?.source?.$case).toBe('embedding');
  });

  const good = Array.from(vector());
  const bad: [string, unknown, string, RegExp][] = [
    [
      'no embedding',
      { type: 'input_embedding', input_embedding: {} },
      'messages[0].content[1].input_embedding.embedding',
      /is required/,
    ],
    [
      'an object for the vector',
      { type: 'input_embedding', input_embedding: { embedding: { a: 1 } } },
      'messages[0].content[1].input_embedding.embedding',
      /array of 1024 numbers or .* base64, got an object/,
    ],
    [
      '1023 numbers',
      { type: 'input_embedding', input_embedding: { embedding: good.slice(1) } },
      'messages[0].content[1].input_embedding.embedding',
      /1024 numbers.*got 1023/,
    ],
    [
      'null inside',
      { type: 'input_embedding', input_embedding: { embedding: good.map((v, i) => (i === 2 ? null : v)) } },
      'messages[0].content[1].input_embedding.embedding[2]',
      /finite number, got null/,
    ],
    [
      'Infinity inside (JSON 1e999)',
      {
        type: 'input_embedding',
        input_embedding: { embedding: good.map((v, i) => (i === 4 ? (JSON.parse('1e999') as number) : v)) },
      },
      'messages[0].content[1].input_embedding.embedding[4]',
      /got Infinity/,
    ],
    [
      'base64 of 8 values',
      { type: 'input_embedding', input_embedding: { embedding: base64(vector(1, 8)) } },
      'messages[0].content[1].input_embedding.embedding',
      /4096 bytes.*got 32/,
    ],
    [
      'base64 that is not base64',
      { type: 'input_embedding', input_embedding: { embedding: '***' } },
      'messages[0].content[1].input_embedding.embedding',
      /not valid base64/,
    ],
    [
      'all zeros',
      { type: 'input_embedding', input_embedding: { embedding: good.map(() => 0) } },
      'messages[0].content[1].input_embedding.embedding',
      /all zeros/,
    ],
    [
      'an unknown key',
      { type: 'input_embedding', input_embedding: { embedding: good, modality: 'image' } },
      'messages[0].content[1].input_embedding.modality',
      /unknown field/,
    ],
    [
      'fused not a boolean',
      { type: 'input_embedding', input_embedding: { embedding: good, fused: 'yes' } },
      'messages[0].content[1].input_embedding.fused',
      /true or false/,
    ],
    [
      'weight -1',
      { type: 'input_embedding', input_embedding: { embedding: good }, weight: -1 },
      'messages[0].content[1].weight',
      /positive/,
    ],
    [
      'audio data in the embedding part',
      {
        type: 'input_embedding',
        input_embedding: { embedding: good },
        input_audio: { data: 'AAAA', format: 'wav' },
      },
      'messages[0].content[1].input_audio',
      /unknown field/,
    ],
  ];
  it.each(bad)('refuses %s with the REST path', (_name, part, param, message) => {
    const error = domainErrorOf(() => chat([part]));
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(error.details.field).toBe(param);
    expect(error.message).toMatch(message);
  });

  it('a fused query must be the only input, whichever part comes first', () => {
    const fused = { type: 'input_embedding', input_embedding: { embedding: good, fused: true } };
    const dog = { type: 'text', text: 'A dog.', imagebind_modality: true };
    expect(domainErrorOf(() => chat([fused, dog])).details.field).toBe(
      'messages[0].content[1].input_embedding.fused',
    );
    expect(domainErrorOf(() => chat([dog, fused])).details.field).toBe(
      'messages[0].content[2].input_embedding.fused',
    );
    const embed = domainErrorOf(() =>
      parseEmbeddingsRequest({ model: 'imagebind-llm', input: 'a dog', imagebind_inputs: [fused] }, POLICY),
    );
    expect(embed.details.field).toBe('imagebind_inputs[0].input_embedding.fused');
  });
});

describe('GatewayService: an embedding skips the encoder and enters the fusion', () => {
  function service(): { gateway: GatewayService; encoded: () => number; projected: () => Float32Array[] } {
    let encoded = 0;
    const projected: Float32Array[] = [];
    const backends = {
      mode: 'standalone',
      encoder: () => ({
        encode: (request: { inputs: unknown[] }) => {
          encoded += request.inputs.length;
          return Promise.resolve({
            embeddings: request.inputs.map(() => ({ embedding: float32Tensor(vector(20), [EMBEDDING_DIM]) })),
            model: { name: 'audio', version: '1' },
          });
        },
      }),
      retriever: { search: () => Promise.reject(new Error('the cache is off here')) },
      bind: {
        project: (request: { queries: commonV1.Tensor }) => {
          const d = request.queries.data;
          projected.push(new Float32Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)));
          return Promise.resolve({ visualQueries: float32Tensor(new Float32Array(64), [1, 64]) });
        },
      },
      decoder: {
        tokenize: () => Promise.resolve({ tokenIds: [1, 2, 3] }),
        generate: async function* () {
          await Promise.resolve();
          yield {
            tokens: [{ id: 42, text: 'x' }],
            finishReason: decoderV1.FinishReason.FINISH_REASON_LENGTH,
          };
        },
      },
      close: () => Promise.resolve(),
    } as unknown as PlatformBackends;
    const gateway = new GatewayService(parseEnv('gateway', gatewayEnvSchema, {}), backends);
    return { gateway, encoded: () => encoded, projected: () => projected };
  }
  const ctx: HopContext = {
    requestId: 'r1',
    deadline: Infinity,
    signal: new AbortController().signal,
    logger: createLogger({ service: 'test', level: 'info', destination: new MemoryLog() }),
  };
  const media: gatewayV1.MultimodalInput = {
    modality: Modality.MODALITY_AUDIO,
    weight: 0.3,
    source: { $case: 'content', value: Buffer.from('RIFF') },
    mediaType: 'audio/wav',
  };

  it('a weighted embedding mixes as an encoder output would (MODEL_SPEC §1.2); only the media is encoded', async () => {
    const { gateway, encoded } = service();
    const mine = vector(14.3, EMBEDDING_DIM).reverse();
    const response = await gateway.embed(
      { inputs: [precomputed(mine, { weight: 0.7 }), media], includeFused: true },
      ctx,
    );
    expect(encoded()).toBe(1);
    const fused = new Float32Array(response.fused!.data.buffer.slice(response.fused!.data.byteOffset));
    expect(Array.from(fused.subarray(0, EMBEDDING_DIM))).toEqual(
      Array.from(fuseEmbeddings([mine, vector(20)], [0.7, 0.3])),
    );
    // the per-input embedding is echoed as sent
    expect(response.embeddings[0]?.embedding?.data).toEqual(float32Tensor(mine, [EMBEDDING_DIM]).data);
  });

  it('a fused query reaches bind exactly as sent: no encoder, no re-normalisation', async () => {
    const { gateway, encoded, projected } = service();
    const q = vector(0.02); // deliberately far from unit length
    const request: gatewayV1.GenerateRequest = {
      inputs: [precomputed(q, {}, true)],
      instruction: 'Describe it.',
      input: '',
      cache: { enabled: false },
      sampling: { temperature: 0 },
    };
    const ids: number[] = [];
    for await (const chunk of gateway.generate(request, ctx)) ids.push(...chunk.tokenIds);
    expect(ids).toEqual([42]);
    expect(encoded()).toBe(0);
    expect(projected()).toEqual([q]);
    const embedded = await gateway.embed({ inputs: [precomputed(q, {}, true)], includeFused: true }, ctx);
    expect(embedded.fused?.data).toEqual(float32Tensor(q, [EMBEDDING_DIM]).data);
  });
});
