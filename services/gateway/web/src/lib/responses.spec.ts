import { describe, expect, it } from 'vitest';
import { readEmbeddings, readSearchHits } from './responses';

describe('readEmbeddings', () => {
  it('puts the vectors in input order by their index', () => {
    const json = {
      data: [
        { index: 1, embedding: [3, 4] },
        { index: 0, embedding: [1, 2] },
      ],
    };
    expect(readEmbeddings(json, 2)).toEqual([
      [1, 2],
      [3, 4],
    ]);
  });

  it('refuses a missing, empty or non-numeric vector and a wrong count', () => {
    expect(() => readEmbeddings({ data: [{ index: 0, embedding: [1] }] }, 2)).toThrow(
      'the server sent 1 usable embeddings for 2 inputs',
    );
    expect(() => readEmbeddings({ data: [{ index: 0, embedding: [] }] }, 1)).toThrow(/usable/);
    expect(() => readEmbeddings({ data: [{ index: 0, embedding: [1, 'x'] }] }, 1)).toThrow(/usable/);
    expect(() => readEmbeddings({ data: [{ index: 0 }] }, 1)).toThrow(/usable/);
    expect(() => readEmbeddings({}, 1)).toThrow('the server sent 0 usable embeddings for 1 inputs');
  });
});

describe('readSearchHits', () => {
  it('reads ids as strings, scores as numbers and shows non-string payload values as JSON', () => {
    const json = {
      data: [
        { id: 7, score: '0.5', payload: { path: 'a.jpg', tags: ['x'], n: 1 } },
        { id: 'b', score: 0.25 },
      ],
    };
    expect(readSearchHits(json)).toEqual([
      { id: '7', score: 0.5, payload: { path: 'a.jpg', tags: '["x"]', n: '1' } },
      { id: 'b', score: 0.25, payload: {} },
    ]);
  });

  it('has no hits without a data array', () => {
    expect(readSearchHits({})).toEqual([]);
    expect(readSearchHits({ data: 'nope' })).toEqual([]);
  });
});
