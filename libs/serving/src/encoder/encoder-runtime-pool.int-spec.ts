// Medium (worker threads): the EncoderRuntime's own PreprocessPool is what bounds preprocessing
// (#15 item 1): beyond its workers and queue a request is refused at once with OVERLOADED (gRPC
// RESOURCE_EXHAUSTED) and the pool's retry hint, and the accepted ones still complete.
import { readFileSync } from 'node:fs';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { TensorSpec } from '@imagebind-llm/inference';
import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
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
      expect((await first)[0]!.preprocessed.shape).toEqual([3, 224, 224]);
      expect((await second)[0]!.preprocessed.data).toEqual((await first)[0]!.preprocessed.data);
    } finally {
      await rt.close();
    }
  });
});
