import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import {
  outputTransferables,
  returnableInput,
  runPreprocessTask,
  serializeError,
  taskBytes,
  type PoolAnswer,
  type PoolRequest,
  type PreprocessTask,
  type PreprocessWorkerData,
  DEFAULT_ANSWER_HOLD_MS,
} from './preprocess-task';
import { ReusableBuffers } from '../reusable-buffers';

/**
 * Worker thread of the PreprocessPool: one task at a time, in the order sent (the pool sends a
 * few ahead). The pool starts it with the limits as `workerData`; each request is a PoolRequest
 * (tasks, and recycled output buffers moved here) and each answer a PoolAnswer (one or more
 * tasks' outputs or errors, their buffers transferred, in order).
 */
const port = parentPort;
if (port === null) throw new Error('preprocess.worker runs as a worker thread of PreprocessPool');
const started = workerData as Partial<PreprocessWorkerData> | undefined;
const limits = started?.limits ?? {};

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

/**
 * Answers held back to go with the next one (at most HOLD_MAX_ANSWERS in one message, the first
 * held at most HOLD_MAX_MS, the pool's answerHoldMs): each message costs the serving thread a
 * wake-up and a lock shared with this thread, ~30-40 µs of kernel time on a VM, as much as a
 * tenth of a small image's own work. An answer waits only for a next task already here, of the same kind and at most twice its
 * input's size (about as quick), while another waits behind that one, and only after a task that
 * took under HOLD_MAX_MS: under a stream of small inputs answers go two or three at a time, adding
 * at most a few milliseconds to the first; a lone or long task is answered the moment it ends.
 */
const HOLD_MAX_MS = started?.answerHoldMs ?? DEFAULT_ANSWER_HOLD_MS;
const HOLD_MAX_ANSWERS = 4;

const queue: { id: number; task: PreprocessTask }[] = [];
const held: { answer: PoolAnswer['answers'][number]; transfer: ArrayBuffer[] }[] = [];
let heldSince = 0;
let running = false;

function accept(message: PoolRequest): void {
  if (message.spares !== undefined) buffers.keep(message.spares);
  queue.push(...message.tasks);
}

/** Requests already in the port, taken without waiting for this thread's event loop to turn. */
function takeArrived(): void {
  for (let m = receiveMessageOnPort(port!); m !== undefined; m = receiveMessageOnPort(port!)) {
    accept(m.message as PoolRequest);
  }
}

function flush(): void {
  if (held.length === 0) return;
  const answers = held.map((h) => h.answer);
  const transfer = held.flatMap((h) => h.transfer);
  held.length = 0;
  try {
    port!.postMessage({ answers } satisfies PoolAnswer, transfer);
  } catch {
    // A buffer that cannot move (a pooled Buffer slice) is copied instead; inputs stay here.
    port!.postMessage({
      answers: answers.map(({ input: _input, ...rest }) => rest),
    } satisfies PoolAnswer);
  }
}

async function drain(): Promise<void> {
  running = true;
  try {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const { id, task } = next;
      const began = performance.now();
      // The input's buffer goes back with the answer (when the output does not use it): the pool
      // copies a later input into it, into pages already mapped, instead of faulting in new ones
      // on its event loop (~3 ms per MB on a VM with costly page faults).
      let outcome: Pick<PoolAnswer['answers'][number], 'output' | 'error' | 'input'>;
      let transfer: ArrayBuffer[];
      try {
        const output = await runPreprocessTask(task, limits, buffers);
        const input = returnableInput(task, output);
        outcome = { output, input };
        transfer = [...outputTransferables(output), ...(input === undefined ? [] : [input])];
      } catch (error) {
        const input = returnableInput(task);
        outcome = { error: serializeError(error), input };
        transfer = input === undefined ? [] : [input];
      }
      const ended = performance.now();
      const answer = { id, ms: ended - began, ...outcome };
      if (held.length === 0) heldSince = ended;
      held.push({ answer, transfer });
      takeArrived();
      // Held only while two more wait here, so the one that ends the group still runs while the
      // pool refills this worker: never idle for a round trip because answers were held.
      const following = queue[0]?.task;
      const hold =
        following !== undefined &&
        queue.length >= 2 &&
        held.length < HOLD_MAX_ANSWERS &&
        ended - began < HOLD_MAX_MS &&
        ended - heldSince < HOLD_MAX_MS &&
        following.kind === task.kind &&
        taskBytes(following) <= 2 * taskBytes(task);
      if (!hold) flush();
    }
  } finally {
    flush();
    running = false;
  }
}

port.on('message', (message: PoolRequest) => {
  accept(message);
  if (!running) void drain();
});
