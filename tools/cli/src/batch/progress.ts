// Progress display of a batch job: a single-line bar redrawn in place on a terminal, plain lines
// (only when the numbers change, at most once per second) everywhere else. The renderers are pure
// functions of a snapshot so they are tested without a terminal; the bar layout is the CLI's one
// (../progress-line), the rate and ETA arithmetic @imagebind-llm/domain's.
import { formatDuration, RateEstimator } from '@imagebind-llm/domain';
import { fitProgressLine, TerminalLine, type ProgressSink } from '../progress-line';

export type { ProgressSink } from '../progress-line';

/** What the display needs to know about a job at one moment. */
export interface ProgressSnapshot {
  /** State name, e.g. `RUNNING`. */
  readonly state: string;
  readonly total: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly cancelled: number;
  /** Items finished per second, when enough samples exist to say. */
  readonly itemsPerSecond?: number | undefined;
  /** Seconds until every item is done at the current rate, when known. */
  readonly etaSeconds?: number | undefined;
}

function done(s: ProgressSnapshot): number {
  return s.succeeded + s.failed + s.cancelled;
}

/** Whole percent done, rounded down so 100% means every item finished; undefined if total is 0. */
function percent(s: ProgressSnapshot): number | undefined {
  if (s.total <= 0) return undefined;
  return Math.min(100, Math.floor((done(s) / s.total) * 100));
}

function formatRate(itemsPerSecond: number): string {
  return `${itemsPerSecond >= 100 ? itemsPerSecond.toFixed(0) : itemsPerSecond.toFixed(1)} items/s`;
}

/** The counts and estimates after the bar, most important first. */
function details(s: ProgressSnapshot): { essential: string[]; optional: string[] } {
  const pct = percent(s);
  const essential = [pct === undefined ? ' --%' : `${String(pct).padStart(3)}%`, `${done(s)}/${s.total}`];
  if (s.failed > 0) essential.push(`${s.failed} failed`);
  if (s.cancelled > 0) essential.push(`${s.cancelled} cancelled`);
  const optional: string[] = [];
  if (s.itemsPerSecond !== undefined && Number.isFinite(s.itemsPerSecond)) {
    optional.push(formatRate(s.itemsPerSecond));
  }
  if (s.etaSeconds !== undefined && Number.isFinite(s.etaSeconds)) {
    optional.push(`ETA ${formatDuration(s.etaSeconds)}`);
  }
  return { essential, optional };
}

/**
 * One line of the terminal progress bar, at most `width - 1` characters (see fitProgressLine:
 * narrow terminals lose the rate and ETA first, then the bar).
 */
export function renderProgress(snapshot: ProgressSnapshot, width: number): string {
  const { essential, optional } = details(snapshot);
  const fraction = snapshot.total > 0 ? done(snapshot) / snapshot.total : 0;
  return fitProgressLine(snapshot.state, fraction, essential, optional, width);
}

/** A plain log line for non-terminals: `RUNNING 45/100 (45%): 40 succeeded, 5 failed, 0 cancelled`. */
export function renderPlainLine(snapshot: ProgressSnapshot, jobId?: string): string {
  const pct = percent(snapshot);
  const head = jobId === undefined ? snapshot.state : `job ${jobId} ${snapshot.state}`;
  const parts = [
    `${head} ${done(snapshot)}/${snapshot.total}${pct === undefined ? '' : ` (${pct}%)`}:`,
    `${snapshot.succeeded} succeeded, ${snapshot.failed} failed, ${snapshot.cancelled} cancelled`,
  ];
  const { optional } = details(snapshot);
  if (optional.length > 0) parts.push(`[${optional.join(', ')}]`);
  return parts.join(' ');
}

export type JobCounts = Omit<ProgressSnapshot, 'itemsPerSecond' | 'etaSeconds'>;

/** Shows successive snapshots of one job: a bar on a terminal, throttled plain lines otherwise. */
export class ProgressReporter {
  private readonly rate = new RateEstimator();
  private lastKey: string | undefined;
  private lastPrintMs = -Infinity;
  private readonly line: TerminalLine;

  constructor(
    private readonly sink: ProgressSink,
    private readonly jobId: string,
    private readonly minPlainIntervalMs = 1000,
  ) {
    this.line = new TerminalLine(sink);
  }

  /** Shows `counts` observed at `nowMs`; `final` forces a plain line and ends the bar's line. */
  update(counts: JobCounts, nowMs: number, final = false): void {
    const doneItems = counts.succeeded + counts.failed + counts.cancelled;
    const estimate = this.rate.observe(nowMs, doneItems, counts.total);
    const snapshot: ProgressSnapshot = {
      ...counts,
      itemsPerSecond: estimate.perSecond,
      etaSeconds: final ? undefined : estimate.etaSeconds,
    };
    if (this.sink.isTTY) {
      this.line.draw(renderProgress(snapshot, this.line.width), final);
      return;
    }
    const key = `${counts.state} ${counts.total} ${counts.succeeded} ${counts.failed} ${counts.cancelled}`;
    if (key === this.lastKey) return;
    if (!final && nowMs - this.lastPrintMs < this.minPlainIntervalMs) return;
    this.lastKey = key;
    this.lastPrintMs = nowMs;
    this.sink.write(`${renderPlainLine(snapshot, this.jobId)}\n`);
  }

  /** Ends a bar left on screen (e.g. on Ctrl-C) so the next output starts on a new line. */
  interrupt(): void {
    this.line.interrupt();
  }
}
