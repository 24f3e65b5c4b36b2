import { parentPort, workerData } from 'node:worker_threads';
import {
  outputTransferables,
  runPreprocessTask,
  serializeError,
  type PreprocessLimits,
  type PreprocessTask,
} from './preprocess-task';

/**
 * Worker thread of the PreprocessPool: one task at a time, in order. The pool starts it with the
 * limits as `workerData`; each request is `{ id, task }` and each answer `{ id, output }` with the
 * output's buffers transferred, or `{ id, error }`.
 */
const port = parentPort;
if (port === null) throw new Error('preprocess.worker runs as a worker thread of PreprocessPool');
const limits = (workerData as { limits?: PreprocessLimits } | undefined)?.limits ?? {};

port.on('message', (message: { id: number; task: PreprocessTask }) => {
  void (async () => {
    try {
      const output = await runPreprocessTask(message.task, limits);
      try {
        port.postMessage({ id: message.id, output }, outputTransferables(output));
      } catch {
        // A buffer that cannot move (a pooled Buffer slice) is copied instead.
        port.postMessage({ id: message.id, output });
      }
    } catch (error) {
      port.postMessage({ id: message.id, error: serializeError(error) });
    }
  })();
});
