import type { FinishReason, GenerationRequest, GenerationResult } from '@imagebind-llm/inference';
import type { GenerationEnginePort } from '../decoder-runtime';

/** One generation the fake engine has accepted. */
export interface FakeRow {
  readonly req: GenerationRequest;
  /** Ends the row the way the real engine would, emitting `tokens` tokens (ids 100, 101, ...). */
  finish(reason: Exclude<FinishReason, 'cancelled'>, tokens?: number): void;
  /** Fails the row as a broken session would. */
  explode(error: Error): void;
}

interface OpenRow extends FakeRow {
  cancel(): void;
}

/**
 * A GenerationEngine stand-in whose rows end only when the test says so. Like the real engine it
 * notices an aborted signal only at its next step (`step()`), so tests can tell "the reservation
 * was freed at once" apart from "the engine dropped the row".
 */
export class FakeGenerationEngine implements GenerationEnginePort {
  /** Every row ever accepted, in order. */
  readonly rows: FakeRow[] = [];
  private readonly open = new Set<OpenRow>();

  async generate(req: GenerationRequest): Promise<GenerationResult> {
    // The real engine starts rows on a later microtask too.
    await Promise.resolve();
    return new Promise<GenerationResult>((resolve, reject) => {
      const end = (finishReason: FinishReason, count: number): void => {
        if (!this.open.delete(row)) return;
        const tokenIds = Array.from({ length: count }, (_, i) => i + 100);
        resolve({ tokenIds, finishReason, promptTokens: req.promptIds.length, timeToFirstTokenMs: 1 });
      };
      const row: OpenRow = {
        req,
        finish: (reason, tokens = 1) => {
          for (let i = 0; i < tokens; i++) req.onToken?.({ id: i + 100, index: i });
          end(reason, tokens);
        },
        explode: (error) => {
          if (this.open.delete(row)) reject(error);
        },
        cancel: () => end('cancelled', 0),
      };
      this.rows.push(row);
      this.open.add(row);
    });
  }

  /** Rows accepted and not yet ended. */
  get running(): number {
    return this.open.size;
  }

  /** One engine step: rows whose signal has aborted leave with finish reason 'cancelled'. */
  step(): void {
    for (const row of [...this.open]) {
      if (row.req.signal?.aborted === true) row.cancel();
    }
  }
}
