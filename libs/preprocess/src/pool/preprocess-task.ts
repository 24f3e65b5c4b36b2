import { DomainError, isDomainError, type ErrorCode, type ErrorDetails } from '@imagebind-llm/errors';
import { preprocessAudioAny } from '../audio/ffmpeg-audio';
import { preprocessImage, type ImageBuffers } from '../image/image.preprocess';
import { groupPointCloud, type PointGroups } from '../point/group';
import { parsePointCloud } from '../point/load';
import { pointGroupingMinPoints, validatePointCloud, type PointGrouping } from '../point/point-cloud';
import { newTensor } from '../reusable-buffers';
import { preprocessVideo } from '../video/video.preprocess';

/**
 * The CPU work of MODEL_SPEC §2 as messages: what a worker thread is asked to do and what it
 * answers. Everything here is plain data (typed arrays, numbers, strings) so it crosses
 * `postMessage`, with the big buffers moved as transferables rather than copied.
 */

/** Limits every preprocessing task applies; they bound memory by configuration, not by the file. */
export interface PreprocessLimits {
  /** Longest audio accepted (WAV and compressed), in seconds. */
  readonly maxAudioSeconds?: number;
  /** Most bytes the decoded float32 samples of one compressed audio file may take. */
  readonly maxAudioDecodedBytes?: number;
  /** Most points one cloud may have (files and client tensors alike). */
  readonly maxPoints?: number;
  /** Most bytes one image's decoded samples may take (16-bit and alpha included). */
  readonly maxImageDecodedBytes?: number;
}

export type PreprocessTask =
  | { readonly kind: 'image'; readonly bytes: Uint8Array }
  | { readonly kind: 'audio'; readonly bytes: Uint8Array }
  | { readonly kind: 'video'; readonly bytes: Uint8Array }
  /** A point-cloud file: parse, then group (FPS + kNN) for the graph's grouping. */
  | {
      readonly kind: 'point';
      readonly bytes: Uint8Array;
      readonly fileName: string;
      readonly grouping: PointGrouping;
    }
  /** A cloud the client already decoded, `[count, 3]`: group it. */
  | { readonly kind: 'point-group'; readonly points: Float32Array; readonly grouping: PointGrouping };

export type PreprocessOutput =
  | { readonly kind: 'tensor'; readonly data: Float32Array; readonly shape: number[] }
  | {
      readonly kind: 'point';
      readonly points: Float32Array;
      readonly count: number;
      readonly groups: PointGroups;
    };

/**
 * Buffers reused from task to task by a thread that runs one at a time (a pool worker): output
 * tensors from the recycled ones, a decoded image's pixels in one scratch buffer.
 */
export type TaskBuffers = ImageBuffers;

/**
 * Runs one task on the calling thread. The pool's workers call this with their reused `buffers`;
 * so does the in-thread runner, without.
 */
export async function runPreprocessTask(
  task: PreprocessTask,
  limits: PreprocessLimits = {},
  buffers: TaskBuffers = {},
): Promise<PreprocessOutput> {
  const allocateTensor = buffers.allocateTensor ?? newTensor;
  switch (task.kind) {
    case 'image': {
      const { tensor, shape } = await preprocessImage(
        task.bytes,
        limits.maxImageDecodedBytes === undefined ? {} : { maxDecodedBytes: limits.maxImageDecodedBytes },
        buffers,
      );
      return { kind: 'tensor', data: tensor, shape: [...shape] };
    }
    case 'audio': {
      const { tensor, shape } = await preprocessAudioAny(task.bytes, {
        ...(limits.maxAudioSeconds === undefined ? {} : { maxDurationSeconds: limits.maxAudioSeconds }),
        ...(limits.maxAudioDecodedBytes === undefined
          ? {}
          : { maxDecodedBytes: limits.maxAudioDecodedBytes }),
        allocateTensor,
      });
      return { kind: 'tensor', data: tensor, shape: [...shape] };
    }
    case 'video': {
      const { tensor, shape } = await preprocessVideo(task.bytes, { allocateTensor });
      return { kind: 'tensor', data: tensor, shape: [...shape] };
    }
    case 'point': {
      const cloud = await parsePointCloud(task.bytes, task.fileName, {
        minPoints: pointGroupingMinPoints(task.grouping),
        ...(limits.maxPoints === undefined ? {} : { maxPoints: limits.maxPoints }),
      });
      const groups = groupPointCloud(cloud, task.grouping);
      return { kind: 'point', points: cloud.points, count: cloud.count, groups };
    }
    case 'point-group': {
      const count = task.points.length / 3;
      const cloud = validatePointCloud({ points: task.points, count }, 'preprocessed', {
        minPoints: pointGroupingMinPoints(task.grouping),
        maxPoints: limits.maxPoints ?? Number.MAX_SAFE_INTEGER,
      });
      return { kind: 'point', points: cloud.points, count, groups: groupPointCloud(cloud, task.grouping) };
    }
  }
}

/** The size of a task's input in bytes. */
export function taskBytes(task: PreprocessTask): number {
  return 'points' in task ? task.points.byteLength : task.bytes.byteLength;
}

/** PreprocessPoolOptions.answerHoldMs by default. */
export const DEFAULT_ANSWER_HOLD_MS = 2;

/** What a pool worker starts with (`workerData`). */
export interface PreprocessWorkerData {
  readonly limits: PreprocessLimits;
  /** PreprocessPoolOptions.answerHoldMs. */
  readonly answerHoldMs: number;
}

/**
 * What the pool posts to a worker: tasks to run in order after those it has, and recycled output
 * buffers to write later outputs into (moved with it).
 */
export interface PoolRequest {
  readonly tasks: readonly { readonly id: number; readonly task: PreprocessTask }[];
  readonly spares?: readonly ArrayBuffer[];
}

/**
 * What a worker posts back: the answers of one or more tasks, in the order they were sent, each an
 * output or an error, with the task's input buffer when the output does not use it, and how long
 * the task ran in the worker.
 */
export interface PoolAnswer {
  readonly answers: readonly {
    readonly id: number;
    readonly ms: number;
    readonly output?: PreprocessOutput;
    readonly error?: SerializedError;
    readonly input?: ArrayBuffer;
  }[];
}

/** The buffers of a task's input, to move to a worker instead of copying them. */
export function taskTransferables(task: PreprocessTask): ArrayBuffer[] {
  return [ownedBuffer('points' in task ? task.points : task.bytes)];
}

/** The buffers of an output, to move back to the caller. */
export function outputTransferables(output: PreprocessOutput): ArrayBuffer[] {
  const views =
    output.kind === 'tensor'
      ? [output.data]
      : [
          output.points,
          output.groups.centerIndices,
          output.groups.centers,
          output.groups.groupIndices,
          output.groups.neighborhoods,
        ];
  // A view shares its buffer with others (subarray): transferring one buffer twice throws.
  return [...new Set(views.map((v) => ownedBuffer(v)))];
}

function ownedBuffer(view: ArrayBufferView): ArrayBuffer {
  if (!(view.buffer instanceof ArrayBuffer)) throw new TypeError('shared memory cannot be transferred');
  return view.buffer;
}

/**
 * A copy of the task whose buffers belong to it alone, so moving them detaches nothing the caller
 * holds. `spare` may give a buffer of at least the input's size to copy the bytes into (the pool's
 * recycled input buffers, whose pages are already mapped); without one a new buffer is made.
 */
export function detachableTask(
  task: PreprocessTask,
  spare?: (bytes: number) => ArrayBuffer | undefined,
): PreprocessTask {
  // Constructors copy (a Buffer's slice() would share the caller's memory).
  if ('points' in task) return { ...task, points: new Float32Array(task.points) };
  const buffer = spare?.(task.bytes.byteLength);
  if (buffer === undefined) return { ...task, bytes: new Uint8Array(task.bytes) };
  const bytes = new Uint8Array(buffer, 0, task.bytes.byteLength);
  bytes.set(task.bytes);
  return { ...task, bytes };
}

/**
 * The input buffer a worker hands back with its answer for the pool to copy the next input into:
 * the task's bytes' buffer, unless the output still uses it (a cloud parsed as a view of its file).
 */
export function returnableInput(task: PreprocessTask, output?: PreprocessOutput): ArrayBuffer | undefined {
  if ('points' in task || !(task.bytes.buffer instanceof ArrayBuffer)) return undefined;
  const buffer = task.bytes.buffer;
  if (output !== undefined && outputTransferables(output).includes(buffer)) return undefined;
  return buffer;
}

/** An error as it crosses `postMessage`: DomainErrors keep their code, message and details. */
export interface SerializedError {
  readonly code?: ErrorCode;
  readonly message: string;
  readonly details?: ErrorDetails;
  readonly stack?: string;
}

export function serializeError(error: unknown): SerializedError {
  if (isDomainError(error)) return { code: error.code, message: error.message, details: error.details };
  if (error instanceof Error)
    return { message: error.message, ...(error.stack === undefined ? {} : { stack: error.stack }) };
  return { message: String(error) };
}

export function deserializeError(error: SerializedError): Error {
  if (error.code !== undefined) return new DomainError(error.code, error.message, error.details ?? {});
  const plain = new Error(error.message);
  if (error.stack !== undefined) plain.stack = error.stack;
  return plain;
}
