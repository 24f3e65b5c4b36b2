import { Writable } from 'node:stream';

/** A log destination that keeps parsed JSON lines in memory (tests, diagnostics endpoints). */
export class MemoryLog extends Writable {
  readonly lines: Record<string, unknown>[] = [];

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    for (const text of chunk.toString('utf8').split('\n')) {
      if (text.trim() !== '') this.lines.push(JSON.parse(text) as Record<string, unknown>);
    }
    callback();
  }
}
