import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import {
  outputTransferables,
  returnableInput,
  runPreprocessTask,
  serializeError,
  type PreprocessLimits,
  type PreprocessTask,
} from './preprocess-task';
import { ReusableBuffers } from '../reusable-buffers';

/**
 * Worker thread of the PreprocessPool: one task at a time, in order (the pool may send the next
 * before this one finishes). The pool starts it with the limits as `workerData`; each request is
 * `{ id, task, spares? }` (spares: recycled output buffers, moved here) and each answer
 * `{ id, output, input? }` with the output's buffers transferred, or `{ id, error, input? }`.
 */
const port = parentPort;
if (port === null) throw new Error('preprocess.worker runs as a worker thread of PreprocessPool');
const limits = (workerData as { limits?: PreprocessLimits } | undefined)?.limits ?? {};

// Below the serving thread: on Linux setpriority(PRIO_PROCESS, 0) renices only the calling thread
// (and what it starts: libvips helpers, ffmpeg), so when the cores are all busy the event loop
// that answers /healthz and streams tokens is scheduled first. Elsewhere it would renice the whole
// process, so it is left alone there.
const WORKER_NICE = 10;
try {
  if (process.platform === 'linux') setPriority(WORKER_NICE);
} catch {
  // Not permitted here: run at the inherited priority.
}

// Output tensors go into the buffers the consumer recycled (sent with later tasks) and a decoded
// image's pixels into one scratch buffer, rather than new memory per input: see ReusableBuffers.
const buffers = new ReusableBuffers();

// One task at a time, in the order sent: the pool may send the next before this one finishes.
let previous: Promise<void> = Promise.resolve();
port.on('message', (message: { id: number; task: PreprocessTask; spares?: ArrayBuffer[] }) => {
  if (message.spares !== undefined) buffers.keep(message.spares);
  previous = previous.then(async () => {
    // The input's buffer goes back with the answer (when the output does not use it): the pool
    // copies a later input into it, into pages already mapped, instead of faulting in new ones on
    // its event loop (~3 ms per MB on a VM with costly page faults).
    try {
      const output = await runPreprocessTask(message.task, limits, buffers);
      const input = returnableInput(message.task, output);
      try {
        port.postMessage({ id: message.id, output, input }, [
          ...outputTransferables(output),
          ...(input === undefined ? [] : [input]),
        ]);
      } catch {
        // A buffer that cannot move (a pooled Buffer slice) is copied instead.
        port.postMessage({ id: message.id, output });
      }
    } catch (error) {
      const input = returnableInput(message.task);
      port.postMessage(
        { id: message.id, error: serializeError(error), input },
        input === undefined ? [] : [input],
      );
    }
  });
});
