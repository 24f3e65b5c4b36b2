import { z } from '@imagebind-llm/config';
import { ErrorCode } from '@imagebind-llm/errors';
import { domainErrorOf } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { numberIn, parseJson, present, required, servedModel, weightSchema } from './json-schema';

const item = z.strictObject({ name: z.string(required('a name')), weight: weightSchema });
const body = z.strictObject({
  model: servedModel('m'),
  items: z.array(item),
  content: z.union([z.string(), z.array(item).min(1, { error: 'must not be empty' })], {
    error: ({ input }) => `must be a string or an array, got ${typeof input}`,
  }),
  k: numberIn({ min: 1, max: 10, integer: true }).nullish(),
});
const ok = { model: 'm', items: [{ name: 'a' }], content: 'x' };

function problem(value: unknown): { code: string; message: string; field: unknown } {
  const e = domainErrorOf(() => parseJson(body, value));
  return { code: e.code, message: e.message, field: e.details.field };
}

describe('parseJson', () => {
  it('returns the typed value, with null as "not sent" for optional fields', () => {
    expect(parseJson(body, { ...ok, k: null })).toStrictEqual({ ...ok, k: null });
    expect(present({ a: 1, b: null, c: undefined, d: 0 })).toStrictEqual({ a: 1, d: 0 });
  });

  it('names the JSON path of the value and says what to send, in the API words', () => {
    expect(problem({ ...ok, items: [{ name: 'a' }, { name: 5 }] })).toEqual({
      code: ErrorCode.InvalidInput,
      message: 'items[1].name: must be a string, got a number',
      field: 'items[1].name',
    });
    expect(problem({ ...ok, items: [{}] }).message).toBe('items[0].name: is required: a name');
    expect(problem({ ...ok, items: [{ name: 'a', weight: 0 }] }).message).toBe(
      'items[0].weight: must be a positive number (unset means 1), got 0',
    );
    expect(problem({ ...ok, k: 2.5 }).message).toBe('k: must be an integer in [1, 10], got 2.5');
    expect(problem({ ...ok, k: '3' }).message).toBe('k: must be an integer in [1, 10], got a string');
  });

  it('refuses a body that is not an object without a field name', () => {
    expect(problem([])).toEqual({
      code: ErrorCode.InvalidInput,
      message: 'request body: must be a JSON object, got an array',
      field: undefined,
    });
  });

  it('names an unknown key, clipped, before any other problem of the objects around it', () => {
    const key = 'k'.repeat(300);
    const e = problem({ ...ok, model: 'other', items: [{ name: 5, [key]: 1 }] });
    // The unknown key inside items[0] outranks the wrong name beside it; the model check comes
    // first in document order.
    expect(e.code).toBe(ErrorCode.NotFound);
    const inner = problem({ ...ok, items: [{ name: 5, [key]: 1 }] });
    expect(inner.message).toBe(
      `items[0].${'k'.repeat(200)}… (100 more characters): unknown field; accepted fields here: name, weight`,
    );
    expect(problem({ ...ok, typo: 1, items: 'x' }).message).toBe(
      'typo: unknown field; accepted fields here: model, items, content, k',
    );
  });

  it('answers NOT_FOUND for a model that is not served, its id clipped', () => {
    const e = problem({ ...ok, model: 'x'.repeat(1000) });
    expect(e.code).toBe(ErrorCode.NotFound);
    expect(e.field).toBe('model');
    expect(e.message).toMatch(/^model: "x{200}… \(800 more characters\)" is not served here; use "m"/);
  });

  it('tells what is wrong inside the branch of a union whose type the value has', () => {
    expect(problem({ ...ok, content: [] }).message).toBe('content: must not be empty');
    expect(problem({ ...ok, content: [{ name: 1 }] }).message).toBe(
      'content[0].name: must be a string, got a number',
    );
    expect(problem({ ...ok, content: 3 }).message).toBe('content: must be a string or an array, got number');
  });

  it('puts a problem found inside a value at that value’s path', () => {
    const e = domainErrorOf(() => parseJson(weightSchema, -1, 'messages[0].content[2].weight'));
    expect(e.message).toBe(
      'messages[0].content[2].weight: must be a positive number (unset means 1), got -1',
    );
    expect(e.details.field).toBe('messages[0].content[2].weight');
  });
});
