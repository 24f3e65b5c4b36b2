import { ErrorCode } from '@imagebind-llm/errors';
import { commonV1, type gatewayV1 } from '@imagebind-llm/proto';
import { describe, expect, it } from 'vitest';
import type { MediaPolicy } from './content-parts';
import { decodeFloat32Le, parseEmbeddingsRequest, toEmbeddingsResponse } from './openai-embeddings';
import { domainErrorOf } from '@imagebind-llm/testing';

const M = commonV1.Modality;
const policy: MediaPolicy = {
  limits: { maxParts: 4, maxPartBytes: 1024, maxBodyBytes: 4096 },
  allowedHosts: ['media.example.com'],
};
const options = { ...policy, modelId: 'imagebind-llm-7b' };
const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 1, 2]);

function tensor(values: readonly number[]): commonV1.Tensor {
  const f = Float32Array.from(values);
  return {
    dtype: commonV1.DataType.DATA_TYPE_FLOAT32,
    shape: [values.length],
    data: Buffer.from(f.buffer, f.byteOffset, f.byteLength),
  };
}

describe('parseEmbeddingsRequest', () => {
  it('embeds the input strings as TEXT, then the content parts, and asks for the fused query', () => {
    const parsed = parseEmbeddingsRequest(
      {
        model: 'imagebind-llm-7b',
        input: ['a dog', 'a barking sound'],
        imagebind_inputs: [
          {
            type: 'image_url',
            image_url: { url: `data:image/jpeg;base64,${JPEG.toString('base64')}` },
            weight: 2,
          },
          { type: 'text', text: 'a park' },
        ],
        encoding_format: 'base64',
        dimensions: 1024,
      },
      options,
    );
    expect(parsed).toStrictEqual({
      request: {
        inputs: [
          { modality: M.MODALITY_TEXT, source: { $case: 'text', value: 'a dog' }, mediaType: '' },
          { modality: M.MODALITY_TEXT, source: { $case: 'text', value: 'a barking sound' }, mediaType: '' },
          {
            modality: M.MODALITY_IMAGE,
            weight: 2,
            source: { $case: 'content', value: JPEG },
            mediaType: 'image/jpeg',
          },
          { modality: M.MODALITY_TEXT, source: { $case: 'text', value: 'a park' }, mediaType: '' },
        ],
        includeFused: true,
      },
      encodingFormat: 'base64',
      model: 'imagebind-llm-7b',
      normalize: false,
      inputPaths: ['input[0]', 'input[1]', 'imagebind_inputs[0]', 'imagebind_inputs[1]'],
    });
  });

  it('takes a single string, defaults to float and skips fusion for one input', () => {
    const parsed = parseEmbeddingsRequest({ model: 'imagebind-llm-7b', input: 'hello' }, options);
    expect(parsed.encodingFormat).toBe('float');
    expect(parsed.normalize).toBe(false);
    expect(parsed.request.includeFused).toBe(false);
    expect(parsed.request.inputs).toHaveLength(1);
  });

  it.each([
    [
      'token ids',
      { input: [[1, 2, 3]] },
      ErrorCode.InvalidInput,
      'input[0]: must be a string, got an array; token ids',
    ],
    ['an empty string', { input: ['ok', ' '] }, ErrorCode.InvalidInput, 'input[1]: must not be empty'],
    ['nothing to embed', { input: [] }, ErrorCode.InvalidInput, 'input: nothing to embed'],
    [
      'another dimension',
      { input: 'x', dimensions: 256 },
      ErrorCode.InvalidInput,
      'dimensions: ImageBind embeddings always have 1024',
    ],
    [
      'an unknown encoding',
      { input: 'x', encoding_format: 'int8' },
      ErrorCode.InvalidInput,
      'encoding_format: must be "float" or "base64"',
    ],
    [
      'a text part flagged off',
      { imagebind_inputs: [{ type: 'text', text: 'x', imagebind_modality: false }] },
      ErrorCode.InvalidInput,
      'imagebind_inputs[0].imagebind_modality: every text part here is an ImageBind TEXT input',
    ],
    [
      'a private URL',
      { imagebind_inputs: [{ type: 'image_url', image_url: { url: 'https://10.0.0.1/a.png' } }] },
      ErrorCode.InvalidInput,
      'imagebind_inputs[0].image_url.url: 10.0.0.1 is a private, loopback, link-local or reserved address',
    ],
    [
      'too many inputs',
      { input: ['a', 'b', 'c', 'd', 'e'] },
      ErrorCode.PayloadTooLarge,
      'input[4]: more than 4 content parts',
    ],
    [
      'another model',
      { model: 'text-embedding-3-small', input: 'x' },
      ErrorCode.NotFound,
      'model: "text-embedding-3-small" is not served here',
    ],
  ])('rejects %s', (_name, overrides, code, message) => {
    const e = domainErrorOf(() =>
      parseEmbeddingsRequest({ model: 'imagebind-llm-7b', ...overrides }, options),
    );
    expect(e.code).toBe(code);
    expect(e.message).toContain(message);
  });
});

describe('toEmbeddingsResponse', () => {
  // Values exactly representable in float32, so the round trip must be exact.
  const a = [0.5, -0.25, 1, 0.125];
  const b = [0, 2, -3.5, 0.75];
  const fused = [0.25, 0.875, -1.25, 0.4375];
  const response: gatewayV1.EmbedResponse = {
    embeddings: [
      { modality: M.MODALITY_TEXT, embedding: tensor(a) },
      { modality: M.MODALITY_IMAGE, embedding: tensor(b) },
    ],
    fused: tensor(fused),
  };

  it('returns one float vector per input plus the fused one as an extension', () => {
    expect(toEmbeddingsResponse(response, { model: 'm', encodingFormat: 'float' })).toEqual({
      object: 'list',
      data: [
        { object: 'embedding', index: 0, embedding: a },
        { object: 'embedding', index: 1, embedding: b },
      ],
      model: 'm',
      usage: { prompt_tokens: 0, total_tokens: 0 },
      imagebind: { fused },
    });
  });

  it('with normalize, divides each input vector by its norm and leaves the fused query as it is', () => {
    const body = toEmbeddingsResponse(response, { model: 'm', encodingFormat: 'float', normalize: true });
    const unit = (v: number[]): number[] => {
      const n = Math.hypot(...v);
      return v.map((x) => Math.fround(x / n));
    };
    expect(body.data.map((d) => d.embedding)).toEqual([unit(a), unit(b)]);
    expect(body.imagebind).toEqual({ fused });
  });

  it('refuses a non-boolean imagebind_normalize naming the field', () => {
    expect(() =>
      parseEmbeddingsRequest({ model: 'imagebind-llm-7b', input: 'x', imagebind_normalize: 1 }, options),
    ).toThrow(
      expect.objectContaining({ code: ErrorCode.InvalidInput, details: { field: 'imagebind_normalize' } }),
    );
  });

  it('sends base64 of the raw float32 little-endian bytes, which decode back to the same vectors', () => {
    const body = toEmbeddingsResponse(response, { model: 'm', encodingFormat: 'base64' });
    const decoded = body.data.map((d) => {
      expect(typeof d.embedding).toBe('string');
      const bytes = Buffer.from(d.embedding as string, 'base64');
      expect(bytes.length).toBe(16);
      // What an OpenAI client does: np.frombuffer(base64.b64decode(s), dtype='<f4').
      return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
    });
    expect(decoded).toEqual([a, b]);
    expect(Buffer.from(body.imagebind!.fused as string, 'base64').readFloatLE(4)).toBe(0.875);
  });

  it('leaves the fused vector out for a single input', () => {
    const single = toEmbeddingsResponse(
      { embeddings: [{ modality: M.MODALITY_TEXT, embedding: tensor(a) }], fused: tensor(a) },
      { model: 'm', encodingFormat: 'float' },
    );
    expect(single.imagebind).toBeUndefined();
  });

  it('refuses a tensor that is not float32 or whose bytes do not match its shape', () => {
    const wrongType = { ...tensor(a), dtype: commonV1.DataType.DATA_TYPE_FLOAT16 };
    expect(
      domainErrorOf(() =>
        toEmbeddingsResponse(
          { embeddings: [{ modality: M.MODALITY_TEXT, embedding: wrongType }] },
          { model: 'm', encodingFormat: 'float' },
        ),
      ).message,
    ).toBe('embeddings[0]: expected a float32 tensor, got DATA_TYPE_FLOAT16');
    const short = { ...tensor(a), shape: [5] };
    const e = domainErrorOf(() =>
      toEmbeddingsResponse(
        { embeddings: [{ modality: M.MODALITY_TEXT, embedding: short }] },
        { model: 'm', encodingFormat: 'base64' },
      ),
    );
    expect(e.code).toBe(ErrorCode.Internal);
    expect(e.message).toContain('16 bytes do not match shape [5]');
  });
});

describe('decodeFloat32Le', () => {
  it('reads little-endian floats from an unaligned view', () => {
    const bytes = Buffer.alloc(9);
    bytes.writeFloatLE(1.5, 1);
    bytes.writeFloatLE(-2, 5);
    expect(decodeFloat32Le(bytes.subarray(1))).toEqual([1.5, -2]);
  });
});
