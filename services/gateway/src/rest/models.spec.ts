import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';
import { getOpenAiModel, toOpenAiModelList } from './models';

const options = { modelId: 'imagebind-llm-7b', created: 1_700_000_000 };
const components = {
  models: [
    { name: 'imagebind-vision', version: '1', ready: true },
    { name: 'llama-decoder', version: '3', ready: false },
  ],
};

describe('toOpenAiModelList', () => {
  it('lists the served model with its components, ready only when all of them are', () => {
    expect(toOpenAiModelList(components, options)).toEqual({
      object: 'list',
      data: [
        {
          id: 'imagebind-llm-7b',
          object: 'model',
          created: 1_700_000_000,
          owned_by: 'imagebind-llm',
          imagebind: {
            ready: false,
            components: [
              { name: 'imagebind-vision', version: '1', ready: true },
              { name: 'llama-decoder', version: '3', ready: false },
            ],
          },
        },
      ],
    });
    const allReady = { models: components.models.map((m) => ({ ...m, ready: true })) };
    expect(toOpenAiModelList(allReady, options).data[0]!.imagebind.ready).toBe(true);
    expect(toOpenAiModelList({ models: [] }, options).data[0]!.imagebind.ready).toBe(false);
  });
});

describe('getOpenAiModel', () => {
  it('returns the served model and NOT_FOUND naming it for any other id', () => {
    expect(getOpenAiModel('imagebind-llm-7b', components, { ...options, ownedBy: 'acme' }).owned_by).toBe(
      'acme',
    );
    let error: unknown;
    try {
      getOpenAiModel('gpt-4o', components, options);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe(ErrorCode.NotFound);
    expect((error as DomainError).message).toBe(
      'model "gpt-4o" is not served here; this deployment serves "imagebind-llm-7b"',
    );
  });
});
