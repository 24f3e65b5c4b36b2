import { describe, expect, it } from 'vitest';
import { newTensor, ownsItsBuffer, ReusableBuffers, ScratchBuffer } from './reusable-buffers';

describe('ownsItsBuffer', () => {
  it('holds only for a tensor that is its whole, movable buffer', () => {
    expect(ownsItsBuffer(new Float32Array(8))).toBe(true);
    expect(ownsItsBuffer(newTensor(8))).toBe(true);
    expect(ownsItsBuffer(new Float32Array(8).subarray(1))).toBe(false);
    expect(ownsItsBuffer(new Float32Array(new ArrayBuffer(40), 0, 8))).toBe(false);
    expect(ownsItsBuffer(new Float32Array(new SharedArrayBuffer(32)))).toBe(false);
    expect(ownsItsBuffer(new Float32Array(0))).toBe(false);
    const moved = new Float32Array(8);
    structuredClone(moved.buffer, { transfer: [moved.buffer] });
    expect(ownsItsBuffer(moved)).toBe(false);
  });
});

describe('ScratchBuffer', () => {
  it('gives views of one buffer, grown by powers of two up to its limit', () => {
    const scratch = new ScratchBuffer(20_000);
    const a = scratch.take(5000)!;
    expect(a.byteLength).toBe(5000);
    expect(scratch.size).toBe(8192);
    const b = scratch.take(3000)!;
    expect(b.buffer).toBe(a.buffer);
    const c = scratch.take(19_000)!;
    expect(c.byteLength).toBe(19_000);
    expect(scratch.size).toBe(20_000);
    expect(scratch.take(20_001)).toBeUndefined();
    expect(scratch.size).toBe(20_000);
    expect(() => new ScratchBuffer(-1)).toThrow(RangeError);
  });
});

describe('ReusableBuffers', () => {
  it('writes a tensor into a kept buffer of exactly its size, else a new one', () => {
    const buffers = new ReusableBuffers();
    const kept = new Float32Array(12);
    buffers.keep([kept.buffer, new Float32Array(7).buffer]);
    expect(buffers.spareTensors).toBe(2);
    expect(buffers.allocateTensor(10).buffer).not.toBe(kept.buffer);
    const reused = buffers.allocateTensor(12);
    expect(reused.buffer).toBe(kept.buffer);
    expect(reused).toHaveLength(12);
    expect(buffers.spareTensors).toBe(1);
    // taken once: the next tensor of that size is new
    expect(buffers.allocateTensor(12).buffer).not.toBe(kept.buffer);
  });

  it('keeps at most its count and bytes, the oldest dropped first, and no detached buffer', () => {
    const buffers = new ReusableBuffers({ spareTensors: 2, spareTensorBytes: 100 });
    const [a, b, c] = [new ArrayBuffer(40), new ArrayBuffer(40), new ArrayBuffer(40)];
    buffers.keep([a, b, c]);
    expect(buffers.spareTensors).toBe(2);
    expect(buffers.allocateTensor(10).buffer).toBe(c);
    expect(buffers.allocateTensor(10).buffer).toBe(b);
    buffers.keep([new ArrayBuffer(60), new ArrayBuffer(60)]);
    expect(buffers.spareTensors).toBe(1);
    const gone = new ArrayBuffer(40);
    structuredClone(gone, { transfer: [gone] });
    buffers.keep([gone]);
    expect(buffers.spareTensors).toBe(1);
  });
});
