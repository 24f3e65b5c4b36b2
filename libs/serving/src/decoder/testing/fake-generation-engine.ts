import type { FinishReason, GenerationRequest, GenerationResult } from '@imagebind-llm/inference';
import type { GenerationEnginePort } from '../decoder-runtime';

/** One generation the fake engine has accepted. */
export interface FakeRow {
  readonly req: GenerationRequest;
  /**
   * Emits tokens through onToken and ends the row the way the real engine would: `tokens` is how
   * many (ids 100, 101, ...) or the ids themselves; indices continue after the resumed tokens.
   */
  finish(reason: Exclude<FinishReason, 'cancelled'>, tokens?: number | readonly number[]): void;
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
      const resumed = req.resumeIds ?? [];
      const end = (finishReason: FinishReason, ids: readonly number[]): void => {
        if (!this.open.delete(row)) return;
        const tokenIds = [...resumed, ...ids];
        resolve({ tokenIds, finishReason, promptTokens: req.promptIds.length, timeToFirstTokenMs: 1 });
      };
      const row: OpenRow = {
        req,
        finish: (reason, tokens = 1) => {
          const ids = typeof tokens === 'number' ? Array.from({ length: tokens }, (_, i) => i + 100) : tokens;
          ids.forEach((id, i) => req.onToken?.({ id, index: resumed.length + i, logprob: -0.5 }));
          end(reason, ids);
        },
        explode: (error) => {
          if (this.open.delete(row)) reject(error);
        },
        cancel: () => end('cancelled', []),
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
