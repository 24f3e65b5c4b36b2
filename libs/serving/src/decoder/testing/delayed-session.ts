import { setTimeout as sleep } from 'node:timers/promises';
import type { InferenceSessionPort } from '@imagebind-llm/inference';

/**
 * Wraps a session so every run waits `delayMs` first: a tiny test model then decodes slowly enough
 * that a stream is reliably still running when a test cancels it or fills the replica.
 */
export function delayedSession(inner: InferenceSessionPort, delayMs: number): InferenceSessionPort {
  return {
    get inputNames() {
      return inner.inputNames;
    },
    get outputNames() {
      return inner.outputNames;
    },
    async run(feeds, outputs) {
      await sleep(delayMs);
      return inner.run(feeds, outputs);
    },
    release: async () => inner.release(),
  };
}
