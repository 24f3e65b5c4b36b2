// Medium (worker threads): the EncoderRuntime's own PreprocessPool is what bounds preprocessing
// (#15 item 1): beyond its workers and queue a request is refused at once with OVERLOADED (gRPC
// RESOURCE_EXHAUSTED) and the pool's retry hint, and the accepted ones still complete.
import { readFileSync } from 'node:fs';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { TensorSpec } from '@imagebind-llm/inference';
import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import type { HostTensor, InferenceSessionPort } from '@imagebind-llm/inference';
import { PreprocessPool } from '@imagebind-llm/inference';
import { EncoderRuntime } from './encoder-runtime';
import { fakeEncoderModel, idleSession } from './testing/fake-row-session';

const IMAGE: TensorSpec[] = [{ name: 'image', dtype: 'float32', dims: ['batch', 3, 224, 224] }];
const jpeg = readFileSync(goldenPath('inputs', 'girl.jpg'));

describe('EncoderRuntime on its preprocessing pool', () => {
  it('refuses past the pool’s workers and queue with OVERLOADED and a retry hint', async () => {
    const rt = new EncoderRuntime([fakeEncoderModel('image', IMAGE, idleSession())], {
      batcher: { maxBatchSize: 8, maxQueueDelayMs: 1, maxQueueSize: 64, maxConcurrentBatches: 1 },
      preprocessing: { workers: 1, maxQueue: 1 },
      // Admission in front of the pool lets all three through, so the pool's own bound answers.
      preprocessConcurrency: 8,
    });
    try {
      // Issued together: the first runs on the one worker, the second waits, the third is refused.
      const first = rt.encode('image', [{ bytes: jpeg }]);
      const second = rt.encode('image', [{ bytes: jpeg }]);
      const third: unknown = await rt.encode('image', [{ bytes: jpeg }]).catch((e: unknown) => e);
      expect(third).toBeInstanceOf(DomainError);
      const refused = third as DomainError;
      expect(refused.code).toBe(ErrorCode.Overloaded); // RESOURCE_EXHAUSTED on the wire
      expect(refused.message).toMatch(/^inputs\[0\]: preprocessing: 1 workers are busy and 1 inputs wait/);
      expect(refused.details.retryAfterMs).toBeGreaterThanOrEqual(50);
      expect((await first)[0]!.preprocessed!.shape).toEqual([3, 224, 224]);
      expect((await second)[0]!.preprocessed!.data).toEqual((await first)[0]!.preprocessed!.data);
    } finally {
      await rt.close();
    }
  });

  it('recycles the tensors it batched when the caller does not keep them, with the same embeddings', async () => {
    // Each row's embedding is a checksum of its input row, read while the session runs.
    const checksum: InferenceSessionPort = {
      inputNames: ['image'],
      outputNames: ['embedding', 'head_prenorm'],
      async run(feeds) {
        const input = feeds['image']! as HostTensor & { data: Float32Array };
        const rows = input.dims[0]!;
        const width = input.data.length / rows;
        const out = new Float32Array(rows * 2);
        for (let r = 0; r < rows; r++) {
          let sum = 0;
          for (let i = 0; i < width; i++) sum += input.data[r * width + i]! * ((i % 7) + 1);
          out[2 * r] = sum;
          out[2 * r + 1] = input.data[r * width + width - 1]!;
        }
        const tensor = { dtype: 'float32', dims: [rows, 2], data: out } as const;
        return Promise.resolve({ embedding: tensor, head_prenorm: tensor });
      },
      release: async () => Promise.resolve(),
    };
    const pool = new PreprocessPool({ workers: 1 });
    const rt = new EncoderRuntime([fakeEncoderModel('image', IMAGE, checksum)], {
      batcher: { maxBatchSize: 4, maxQueueDelayMs: 1, maxQueueSize: 64, maxConcurrentBatches: 1 },
      preprocessing: pool,
    });
    try {
      const [kept] = await rt.encode('image', [{ bytes: jpeg }]);
      expect(kept!.preprocessed!.shape).toEqual([3, 224, 224]);
      expect(pool.stats().spareOutputs).toBe(0);
      for (let i = 0; i < 3; i++) {
        const encoded = await rt.encode('image', [{ bytes: jpeg }, { bytes: jpeg }], {
          keepPreprocessed: false,
        });
        for (const item of encoded) {
          expect(item.preprocessed).toBeUndefined();
          expect(Array.from(item.embedding)).toEqual(Array.from(kept!.embedding));
        }
        // Both tensors came back to the pool; the next request's tasks take them to the worker.
        expect(pool.stats().spareOutputs).toBe(2);
      }
      // A client's own tensor is never recycled.
      const own = new Float32Array(kept!.preprocessed!.data);
      await rt.encode('image', [{ preprocessed: { data: own, shape: [3, 224, 224] } }], {
        keepPreprocessed: false,
      });
      expect(own).toHaveLength(3 * 224 * 224);
      expect(pool.stats().spareOutputs).toBe(2);
    } finally {
      await rt.close();
      await pool.close();
    }
  });
});
