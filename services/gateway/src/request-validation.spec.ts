import { ErrorCode } from '@imagebind-llm/errors';
import { commonV1, type gatewayV1 } from '@imagebind-llm/proto';
import { describe, expect, it } from 'vitest';
import { validateGenerateRequest, validateInputs } from './request-validation';
import { domainErrorOf } from '@imagebind-llm/testing';

const M = commonV1.Modality;
const limits = { maxInputs: 3, maxInputBytes: 10 };
const image = (extra: Partial<gatewayV1.MultimodalInput> = {}): gatewayV1.MultimodalInput => ({
  modality: M.MODALITY_IMAGE,
  source: { $case: 'content', value: Buffer.from('jpegbytes') },
  mediaType: '',
  ...extra,
});
const request = (extra: Partial<gatewayV1.GenerateRequest> = {}): gatewayV1.GenerateRequest => ({
  inputs: [image()],
  instruction: 'Describe it.',
  input: '',
  ...extra,
});

describe('validateGenerateRequest', () => {
  it('accepts a well-formed request with every knob at its limits', () => {
    expect(() =>
      validateGenerateRequest(
        request({
          inputs: [
            image({ weight: 0.7 }),
            { modality: M.MODALITY_TEXT, source: { $case: 'text', value: 'a dog' }, mediaType: '' },
          ],
          cache: { enabled: true, size: 100, temperature: 0, weight: 1 },
          sampling: { temperature: 0, topP: 1 },
          stopping: { maxNewTokens: 512 },
        }),
        limits,
      ),
    ).not.toThrow();
  });

  it.each([
    ['no inputs', request({ inputs: [] }), 'inputs', ErrorCode.InvalidInput],
    [
      'unspecified modality',
      request({ inputs: [image({ modality: M.MODALITY_UNSPECIFIED })] }),
      'inputs[0].modality',
      ErrorCode.InvalidInput,
    ],
    [
      'depth is not an LLM modality',
      request({ inputs: [image({ modality: M.MODALITY_DEPTH })] }),
      'inputs[0].modality',
      ErrorCode.InvalidInput,
    ],
    [
      'weight 0 (MODEL_SPEC §1.3)',
      request({ inputs: [image({ weight: 0 })] }),
      'inputs[0].weight',
      ErrorCode.InvalidInput,
    ],
    [
      'NaN weight',
      request({ inputs: [image({ weight: Number.NaN })] }),
      'inputs[0].weight',
      ErrorCode.InvalidInput,
    ],
    [
      'no source',
      request({ inputs: [image({ source: undefined })] }),
      'inputs[0].source',
      ErrorCode.InvalidInput,
    ],
    [
      'empty content',
      request({ inputs: [image({ source: { $case: 'content', value: Buffer.alloc(0) } })] }),
      'inputs[0].content',
      ErrorCode.InvalidInput,
    ],
    [
      'content over the limit',
      request({ inputs: [image({ source: { $case: 'content', value: Buffer.alloc(11) } })] }),
      'inputs[0].content',
      ErrorCode.PayloadTooLarge,
    ],
    [
      'text on an image',
      request({ inputs: [image({ source: { $case: 'text', value: 'x' } })] }),
      'inputs[0].text',
      ErrorCode.InvalidInput,
    ],
    [
      'blank text input',
      request({
        inputs: [{ modality: M.MODALITY_TEXT, source: { $case: 'text', value: '  ' }, mediaType: '' }],
      }),
      'inputs[0].text',
      ErrorCode.InvalidInput,
    ],
    [
      'too many inputs',
      request({ inputs: [image(), image(), image(), image()] }),
      'inputs',
      ErrorCode.PayloadTooLarge,
    ],
    ['blank instruction', request({ instruction: ' \n' }), 'instruction', ErrorCode.InvalidInput],
    ['cache size 0', request({ cache: { size: 0 } }), 'cache.size', ErrorCode.InvalidInput],
    ['cache size 101', request({ cache: { size: 101 } }), 'cache.size', ErrorCode.InvalidInput],
    ['cache weight 1.5', request({ cache: { weight: 1.5 } }), 'cache.weight', ErrorCode.InvalidInput],
    [
      'negative temperature',
      request({ sampling: { temperature: -0.1 } }),
      'sampling.temperature',
      ErrorCode.InvalidInput,
    ],
    ['top_p above 1', request({ sampling: { topP: 1.01 } }), 'sampling.top_p', ErrorCode.InvalidInput],
    [
      'max_new_tokens 0',
      request({ stopping: { maxNewTokens: 0 } }),
      'stopping.max_new_tokens',
      ErrorCode.InvalidInput,
    ],
    [
      'max_new_tokens past the context',
      request({ stopping: { maxNewTokens: 513 } }),
      'stopping.max_new_tokens',
      ErrorCode.InvalidInput,
    ],
  ])('rejects %s, naming the field', (_name, req, field, code) => {
    const e = domainErrorOf(() => validateGenerateRequest(req, limits));
    expect(e.code).toBe(code);
    expect(e.details.field).toBe(field);
    expect(e.message.startsWith(`${field}: `)).toBe(true);
  });

  it('reports the first bad input by index', () => {
    const e = domainErrorOf(() => validateInputs([image(), image({ weight: -1 })], limits));
    expect(e.details.field).toBe('inputs[1].weight');
    expect(e.message).toContain('got -1');
  });
});
