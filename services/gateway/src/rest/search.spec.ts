import { ErrorCode } from '@imagebind-llm/errors';
import { commonV1 } from '@imagebind-llm/proto';
import { describe, expect, it } from 'vitest';
import type { MediaPolicy } from './content-parts';
import { parseSearchRequest, toSearchResponse } from './search';
import { domainErrorOf } from '@imagebind-llm/testing';

const M = commonV1.Modality;
const policy: MediaPolicy = {
  limits: { maxParts: 3, maxPartBytes: 1024, maxBodyBytes: 4096 },
  allowedHosts: [],
};
const options = { ...policy, modelId: 'imagebind-llm' };
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('parseSearchRequest', () => {
  it('turns content parts into weighted inputs (text parts are TEXT inputs) and keeps k', () => {
    const parsed = parseSearchRequest(
      {
        model: 'imagebind-llm',
        inputs: [
          { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG.toString('base64')}` } },
          { type: 'text', text: 'a dog barking', weight: 0.5 },
        ],
        k: 5,
      },
      options,
    );
    expect(parsed.model).toBe('imagebind-llm');
    expect(parsed.request.k).toBe(5);
    expect(parsed.request.collection).toBe('');
    expect(parsed.request.inputs).toStrictEqual([
      { modality: M.MODALITY_IMAGE, source: { $case: 'content', value: PNG }, mediaType: 'image/png' },
      {
        modality: M.MODALITY_TEXT,
        weight: 0.5,
        source: { $case: 'text', value: 'a dog barking' },
        mediaType: '',
      },
    ]);
  });

  it('leaves k unset (server default 10) when omitted', () => {
    const parsed = parseSearchRequest(
      { model: 'imagebind-llm', inputs: [{ type: 'text', text: 'rain' }] },
      options,
    );
    expect(parsed.request.k).toBeUndefined();
  });

  it('names the field that is wrong', () => {
    const noInputs = domainErrorOf(() => parseSearchRequest({ model: 'imagebind-llm', inputs: [] }, options));
    expect(noInputs.code).toBe(ErrorCode.InvalidInput);
    expect(noInputs.message).toMatch(/^inputs: must hold at least one content part/);
    const badK = domainErrorOf(() =>
      parseSearchRequest({ model: 'imagebind-llm', inputs: [{ type: 'text', text: 'x' }], k: 0 }, options),
    );
    expect(badK.message).toMatch(/^k: must be an integer in \[1, 1000\]/);
    const unknown = domainErrorOf(() =>
      parseSearchRequest(
        { model: 'imagebind-llm', inputs: [{ type: 'text', text: 'x' }], top_k: 3 },
        options,
      ),
    );
    expect(unknown.message).toContain('top_k');
    const model = domainErrorOf(() => parseSearchRequest({ model: 'gpt-4o', inputs: [] }, options));
    expect(model.code).toBe(ErrorCode.NotFound);
    const tooMany = domainErrorOf(() =>
      parseSearchRequest(
        { model: 'imagebind-llm', inputs: Array.from({ length: 4 }, () => ({ type: 'text', text: 'x' })) },
        options,
      ),
    );
    expect(tooMany.code).toBe(ErrorCode.PayloadTooLarge);
  });
});

describe('toSearchResponse', () => {
  it('keeps the order, writes ids as strings and copies payloads', () => {
    const body = toSearchResponse(
      {
        hits: [
          { id: 2 ** 53, score: 0.9, payload: { source: 'a.jpg' } },
          { id: 3, score: 0.5, payload: {} },
        ],
      },
      'imagebind-llm',
    );
    expect(body).toStrictEqual({
      object: 'list',
      model: 'imagebind-llm',
      data: [
        { id: '9007199254740992', score: 0.9, payload: { source: 'a.jpg' } },
        { id: '3', score: 0.5, payload: {} },
      ],
    });
  });
});
