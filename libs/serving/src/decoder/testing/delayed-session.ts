import { setTimeout as sleep } from 'node:timers/promises';
import { isStateful, type InferenceSessionPort, type StatefulSessionPort } from '@imagebind-llm/inference';

/**
 * Wraps a session so every run waits `delayMs` first: a tiny test model then decodes slowly enough
 * that a stream is reliably still running when a test cancels it or fills the replica. A session
 * that holds state (the worker session's slot KV cache) keeps doing so through the wrapper.
 */
export function delayedSession(inner: InferenceSessionPort, delayMs: number): InferenceSessionPort {
  const plain: InferenceSessionPort = {
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
  if (!isStateful(inner)) return plain;
  const stateful: StatefulSessionPort = {
    ...plain,
    get inputNames() {
      return inner.inputNames;
    },
    get outputNames() {
      return inner.outputNames;
    },
    get stateLocation() {
      return inner.stateLocation;
    },
    get stepGraph() {
      return inner.stepGraph;
    },
    createState: async (name, elements, options) => inner.createState(name, elements, options),
    writeState: async (name, at, values) => inner.writeState(name, at, values),
    dropState: async () => inner.dropState(),
    async runWithState(feeds, writes, outputs, graph) {
      await sleep(delayMs);
      return inner.runWithState(feeds, writes, outputs, graph);
    },
  };
  return stateful;
}
