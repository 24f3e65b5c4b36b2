import { commonV1 } from '@imagebind-llm/proto';
import { errorOf } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { ImageBindError } from './image-bind-error';
import { embedding, EMBEDDING_LENGTH } from './input-builders';
import { decodeFloat32Tensor } from './tensor-decode';

/** A vector with distinct values, so a reordering or a lost value would show. */
const ramp = (): Float32Array => Float32Array.from({ length: EMBEDDING_LENGTH }, (_, i) => (i - 512) / 37);

describe('embedding() builder (precomputed ImageBind embeddings)', () => {
  it('carries the vector as little-endian float32 [1024], with weight and modality', () => {
    const input = embedding(ramp(), { weight: 0.7, modality: 'audio' });
    expect(input.modality).toBe(commonV1.Modality.MODALITY_AUDIO);
    expect(input.weight).toBe(0.7);
    expect(input.source?.$case).toBe('embedding');
    if (input.source?.$case !== 'embedding') return;
    expect(input.source.value.fused).toBe(false);
    const tensor = input.source.value.vector!;
    expect(tensor.shape).toEqual([EMBEDDING_LENGTH]);
    expect(tensor.data.readFloatLE(4 * 10)).toBe(Math.fround((10 - 512) / 37));
    expect(decodeFloat32Tensor(tensor).values).toEqual(ramp());
  });

  it('accepts a plain number array; the modality stays unset by default; fused is passed on', () => {
    const input = embedding(Array.from(ramp()), { fused: true });
    expect(input.modality).toBe(commonV1.Modality.MODALITY_UNSPECIFIED);
    expect(input.weight).toBeUndefined();
    expect(input.source?.$case === 'embedding' && input.source.value.fused).toBe(true);
  });

  it('refuses a wrong length, a non-finite value, a bad weight, a weight on a fused query', () => {
    expect(errorOf(ImageBindError, () => embedding(new Float32Array(512))).message).toMatch(
      /1024 values, got 512/,
    );
    const withNaN = ramp();
    withNaN[3] = NaN;
    expect(errorOf(ImageBindError, () => embedding(withNaN)).message).toMatch(/value 3 is NaN/);
    expect(errorOf(ImageBindError, () => embedding([...ramp().slice(0, 1023), Infinity])).message).toMatch(
      /value 1023/,
    );
    expect(errorOf(ImageBindError, () => embedding(ramp(), { weight: 0 })).field).toBe('weight');
    expect(errorOf(ImageBindError, () => embedding(ramp(), { fused: true, weight: 1 })).message).toMatch(
      /fused query/,
    );
    expect(errorOf(ImageBindError, () => embedding(ramp(), { modality: 'smell' as never })).message).toMatch(
      /embedding\(\): unknown modality/,
    );
  });
});
