// Structured progress of a model build: which long step runs and how many bytes of it are done.
// The builder counts what is cheap to count (checkpoint bytes hashed, tensor bytes read for a graph,
// cache bytes copied); the CLI turns it into a bar or periodic lines.
import { statSync } from 'node:fs';
import { basename } from 'node:path';
import type { SourceFile } from '@imagebind-llm/inference';
import { source } from './repository-writer';

/** `done` of `total` bytes of one step; `final` closes the step (then `total === done`). */
export interface BuildProgress {
  /** What runs, e.g. `llama-decoder/model.onnx` or `sha256 consolidated.00.pth`. */
  readonly phase: string;
  readonly done: number;
  readonly total: number;
  readonly final?: boolean;
}

export type BuildProgressListener = (progress: BuildProgress) => void;

/**
 * Counts the bytes of one step against an estimate made before it started. The estimate only sizes
 * the bar: a count past it raises the total (never past 100 %), and the closing report says what
 * was really done.
 */
export class PhaseCounter {
  private done = 0;

  constructor(
    private readonly phase: string,
    private readonly total: number,
    private readonly listener: BuildProgressListener | undefined,
    private readonly signal?: AbortSignal,
  ) {
    listener?.({ phase, done: 0, total });
  }

  /** Adds `bytes` and reports; throws the abort reason when the build was cancelled meanwhile. */
  add(bytes: number): void {
    this.signal?.throwIfAborted();
    this.done += bytes;
    this.listener?.({ phase: this.phase, done: this.done, total: Math.max(this.total, this.done) });
  }

  finish(): void {
    this.listener?.({ phase: this.phase, done: this.done, total: this.done, final: true });
  }
}

/** A checkpoint's `model.json` source entry, its sha256 reported as a step of its own. */
export async function hashedSource(
  role: string,
  path: string,
  listener: BuildProgressListener | undefined,
  signal?: AbortSignal,
): Promise<SourceFile> {
  const counter = new PhaseCounter(`sha256 ${basename(path)}`, statSync(path).size, listener, signal);
  const entry = await source(role, path, (bytes) => counter.add(bytes));
  counter.finish();
  return entry;
}
