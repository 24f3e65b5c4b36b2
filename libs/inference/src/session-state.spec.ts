import { describe, expect, it } from 'vitest';
import { stateView, WINDOW_GROWTH, type WindowBuffers } from './session-state';

/** A state of `rows` rows of `capacity` positions of 2 values: value = row · 1000 + position. */
function slots(rows: number, capacity: number): Float32Array {
  const data = new Float32Array(rows * capacity * 2);
  for (let r = 0; r < rows; r++)
    for (let p = 0; p < capacity; p++)
      data.fill(r * 1000 + p, (r * capacity + p) * 2, (r * capacity + p + 1) * 2);
  return data;
}

/** The window's values, row by row: what a compact copy of [0, width) of each row must hold. */
function expected(rows: number, width: number): number[] {
  return Array.from({ length: rows }, (_, r) =>
    Array.from({ length: width }, (_, p) => [r * 1000 + p, r * 1000 + p]).flat(),
  ).flat();
}

describe('stateView', () => {
  const capacity = 100;
  const buffers = new Map([['kv', slots(4, capacity)]]);
  const window = (rows: number, width: number) => ({
    state: 'kv',
    dims: [rows, width, 2],
    window: { capacity, width },
  });

  it('copies the first width positions of every row, compacted', () => {
    const view = stateView(buffers, window(3, 5));
    expect(view.dims).toEqual([3, 5, 2]);
    expect(Array.from(view.data as Float32Array)).toEqual(expected(3, 5));
  });

  it('reuses one buffer per input while the window grows, and replaces it when it is far too large', () => {
    const windows: WindowBuffers = new Map();
    const read = (input: string, rows: number, width: number) => {
      const view = stateView(buffers, window(rows, width), { windows, input });
      expect(Array.from(view.data as Float32Array), `${input} ${rows}×${width}`).toEqual(
        expected(rows, width),
      );
      return (view.data as Float32Array).buffer;
    };
    const first = read('k', 4, 3);
    // allocated for the width rounded up to WINDOW_GROWTH positions: reused up to there
    expect(windows.get('k')!.length).toBe(4 * WINDOW_GROWTH * 2);
    for (let width = 4; width <= WINDOW_GROWTH; width++) expect(read('k', 4, width)).toBe(first);
    // another input has a buffer of its own (both are fed to the same run)
    expect(read('v', 4, 3)).not.toBe(first);
    // past the rounded width: a larger one, kept in turn
    const second = read('k', 4, WINDOW_GROWTH + 1);
    expect(second).not.toBe(first);
    expect(read('k', 4, WINDOW_GROWTH + 2)).toBe(second);
    // fewer rows (rows left): still within twice the need, kept; one row: replaced by a small one
    expect(read('k', 3, WINDOW_GROWTH + 2)).toBe(second);
    expect(read('k', 1, 4)).not.toBe(second);
    expect(windows.get('k')!.length).toBe(WINDOW_GROWTH * 2);
    // never past the capacity
    read('k', 4, capacity - 1);
    expect(windows.get('k')!.length).toBe(4 * capacity * 2);
  });

  it('refuses a window that does not fit the state', () => {
    expect(() => stateView(buffers, window(5, 3))).toThrow(/does not fit/);
  });
});
