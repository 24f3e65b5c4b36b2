import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { BatchItemResult } from '@imagebind-llm/client';

/** One result as its JSONL line (without the newline), keys in the documented snake_case. */
export function resultLine(result: BatchItemResult): string {
  const base = { index: result.index, item_id: result.itemId };
  switch (result.kind) {
    case 'text':
      return JSON.stringify({ ...base, text: result.text });
    case 'embedding':
      // Float32 values widened to doubles print exactly and read back to the same float32.
      return JSON.stringify({ ...base, embedding: Array.from(result.embedding) });
    case 'pointId':
      return JSON.stringify({ ...base, point_id: result.pointId });
    case 'error':
      return JSON.stringify({
        ...base,
        error: {
          code: result.error.code,
          message: result.error.message,
          ...(result.error.attempts > 0 ? { attempts: result.error.attempts } : {}),
        },
      });
    case 'unknown':
      return JSON.stringify(base);
  }
}

export interface ExportSummary {
  readonly written: number;
  readonly errors: number;
  /** Results of a kind this CLI does not know (written with index and item_id only). */
  readonly unknown: number;
  /** The reader went away before the end (stdout closed). */
  readonly closed?: boolean;
}

async function drain(
  results: AsyncIterable<BatchItemResult>,
  write: (line: string) => Promise<void>,
): Promise<ExportSummary> {
  let written = 0;
  let errors = 0;
  let unknown = 0;
  for await (const result of results) {
    await write(`${resultLine(result)}\n`);
    written++;
    if (result.kind === 'error') errors++;
    if (result.kind === 'unknown') unknown++;
  }
  return { written, errors, unknown };
}

/**
 * Streams results to a writable (stdout), waiting for it to drain so memory stays flat. A reader
 * that goes away (`| head`: EPIPE) ends the export quietly, which also cancels the stream.
 */
export async function writeResultsToStream(
  results: AsyncIterable<BatchItemResult>,
  stream: NodeJS.WritableStream,
): Promise<ExportSummary> {
  let failure: NodeJS.ErrnoException | undefined;
  const onError = (error: NodeJS.ErrnoException): void => {
    failure = error;
  };
  stream.on('error', onError);
  try {
    return await drain(results, async (line) => {
      if (failure === undefined && !stream.write(line)) {
        // Rejects if the stream fails while we wait.
        await once(stream, 'drain');
      }
      if (failure !== undefined) throw failure;
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EPIPE')
      return { written: 0, errors: 0, unknown: 0, closed: true };
    throw error;
  } finally {
    stream.removeListener('error', onError);
  }
}

/**
 * Streams results into `path` through a temporary file beside it, renamed into place only after
 * the stream ended and the data reached the disk: a partial export (an error, Ctrl-C) never looks
 * complete, and an existing file is replaced only by a whole new one.
 */
export async function writeResultsToFile(
  results: AsyncIterable<BatchItemResult>,
  path: string,
  /** Throws when the export is not what was expected: the file is then not written. */
  verify: (summary: ExportSummary) => void = () => undefined,
): Promise<ExportSummary> {
  const temp = join(dirname(path), `.${basename(path)}.partial-${process.pid}`);
  const handle = await open(temp, 'wx');
  const onSignal = (): void => {
    rmSync(temp, { force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  let closed = false;
  try {
    const summary = await drain(results, async (line) => {
      await handle.write(line);
    });
    await handle.sync();
    await handle.close();
    closed = true;
    verify(summary);
    await rename(temp, path);
    return summary;
  } catch (error) {
    if (!closed) await handle.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
}
