import type { ChatUsage } from './chat-stream';

export interface RunMetrics {
  /** Request sent → last token (or → Stop). */
  readonly latencyMs?: number;
  /** Request sent → first token, measured in the page. */
  readonly ttftClientMs?: number;
  /** The server's own time to first token (usage chunk). */
  readonly ttftServerMs?: number;
  readonly tokens?: number;
  /** The server's tokens per second (usage chunk). */
  readonly serverTokensPerSecond?: number;
  /** Tokens per second between the first and the last token, measured in the page. */
  readonly clientTokensPerSecond?: number;
  readonly promptTokens?: number;
  readonly seed?: number;
  readonly finish?: string;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * The figures of one streamed answer: what the page measures (time to the first token, tokens
 * per second between the first and the last) and what the server reports in its usage chunk.
 * Times are `performance.now()` milliseconds.
 */
export class StreamTimings {
  private firstAt: number | undefined;
  private lastAt: number | undefined;
  private count = 0;
  /** The server's usage chunk, once it came. */
  usage: ChatUsage | undefined;
  /** The server's finish reason, once it came. */
  finish: string | undefined;

  constructor(private readonly sentAt: number) {}

  /** Counts one streamed token that arrived at `now`; returns the figures shown while streaming. */
  token(now: number): { readonly ttftClientMs: number; readonly tokens: number } {
    this.firstAt ??= now;
    this.lastAt = now;
    this.count += 1;
    return { ttftClientMs: this.firstAt - this.sentAt, tokens: this.count };
  }

  /** Every figure known when the answer ended (or was stopped) at `endAt`. */
  figures(endAt: number): RunMetrics {
    const { firstAt, lastAt, count, usage, finish, sentAt } = this;
    const m: Mutable<RunMetrics> = { latencyMs: endAt - sentAt, tokens: usage?.completionTokens ?? count };
    if (firstAt !== undefined) m.ttftClientMs = firstAt - sentAt;
    if (firstAt !== undefined && lastAt !== undefined && count > 1 && lastAt > firstAt) {
      m.clientTokensPerSecond = (count - 1) / ((lastAt - firstAt) / 1000);
    }
    if (usage?.timeToFirstTokenMs !== undefined) m.ttftServerMs = usage.timeToFirstTokenMs;
    if (usage?.tokensPerSecond !== undefined) m.serverTokensPerSecond = usage.tokensPerSecond;
    if (usage?.seed !== undefined) m.seed = usage.seed;
    if (usage !== undefined) m.promptTokens = usage.promptTokens;
    if (finish !== undefined) m.finish = finish;
    return m;
  }
}
