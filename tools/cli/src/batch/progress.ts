// Progress display of a batch job: a single-line bar redrawn in place on a terminal, plain lines
// (only when the numbers change, at most once per second) everywhere else. The renderers are pure
// functions of a snapshot so they are tested without a terminal.

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

const MIN_BAR = 10;
// Wider bars say nothing more and make the line jump more when the counts grow a digit.
const MAX_BAR = 30;

function done(s: ProgressSnapshot): number {
  return s.succeeded + s.failed + s.cancelled;
}

/** Whole percent done, rounded down so 100% means every item finished; undefined if total is 0. */
function percent(s: ProgressSnapshot): number | undefined {
  if (s.total <= 0) return undefined;
  return Math.min(100, Math.floor((done(s) / s.total) * 100));
}

/** `0:07`, `12:05`, `1:02:03`. */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
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

function bar(s: ProgressSnapshot, width: number): string {
  const fraction = s.total > 0 ? Math.min(1, done(s) / s.total) : 0;
  const filled = Math.floor(fraction * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

/**
 * One line of the terminal progress bar, at most `width - 1` characters (writing the last column
 * makes some terminals wrap). No control characters: the caller adds `\r` and clear-to-end.
 * The bar takes the room left, up to 30 columns; narrow terminals lose the rate and ETA first,
 * then the bar.
 */
export function renderProgress(snapshot: ProgressSnapshot, width: number): string {
  const room = Math.max(1, Math.floor(width) - 1);
  const { essential, optional } = details(snapshot);
  const state = snapshot.state;
  for (const extra of [optional, []]) {
    const text = [...essential, ...extra].join('  ');
    // state + ' ' + [bar] + ' ' + text
    const barWidth = room - state.length - text.length - 4;
    if (barWidth >= MIN_BAR) return `${state} ${bar(snapshot, Math.min(MAX_BAR, barWidth))} ${text}`;
  }
  for (const extra of [optional, []]) {
    const line = [state, ...essential, ...extra].join('  ');
    if (line.length <= room) return line;
  }
  return [state, ...essential].join('  ').slice(0, room);
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

/**
 * Items per second over a sliding window of recent samples, so the rate follows the job's current
 * pace rather than its average since the start (a job that waited in the queue would look slow).
 */
export class RateEstimator {
  private readonly samples: { atMs: number; done: number }[] = [];

  constructor(private readonly windowMs = 30_000) {}

  /** Records `done` items at `atMs` and returns the rate and ETA for `total`. */
  observe(
    atMs: number,
    doneItems: number,
    total: number,
  ): { itemsPerSecond: number | undefined; etaSeconds: number | undefined } {
    this.samples.push({ atMs, done: doneItems });
    while (this.samples.length > 2 && atMs - this.samples[1]!.atMs >= this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const elapsedMs = atMs - first.atMs;
    // Under a second of history, or a count that went backwards, says nothing reliable.
    if (elapsedMs < 1000 || doneItems < first.done)
      return { itemsPerSecond: undefined, etaSeconds: undefined };
    const itemsPerSecond = ((doneItems - first.done) * 1000) / elapsedMs;
    const remaining = Math.max(0, total - doneItems);
    const etaSeconds = itemsPerSecond > 0 ? remaining / itemsPerSecond : undefined;
    return { itemsPerSecond, etaSeconds };
  }
}

export interface ProgressSink {
  /** Writes raw text (no newline added) to the progress stream. */
  readonly write: (text: string) => void;
  /** True on a terminal: draw the bar in place. */
  readonly isTTY: boolean;
  /** Terminal width, when known. */
  readonly columns?: number | undefined;
}

export type JobCounts = Omit<ProgressSnapshot, 'itemsPerSecond' | 'etaSeconds'>;

/** Shows successive snapshots of one job: a bar on a terminal, throttled plain lines otherwise. */
export class ProgressReporter {
  private readonly rate = new RateEstimator();
  private lastKey: string | undefined;
  private lastPrintMs = -Infinity;
  private drawn = false;

  constructor(
    private readonly sink: ProgressSink,
    private readonly jobId: string,
    private readonly minPlainIntervalMs = 1000,
  ) {}

  /** Shows `counts` observed at `nowMs`; `final` forces a plain line and ends the bar's line. */
  update(counts: JobCounts, nowMs: number, final = false): void {
    const doneItems = counts.succeeded + counts.failed + counts.cancelled;
    const estimate = this.rate.observe(nowMs, doneItems, counts.total);
    const snapshot: ProgressSnapshot = {
      ...counts,
      itemsPerSecond: estimate.itemsPerSecond,
      etaSeconds: final ? undefined : estimate.etaSeconds,
    };
    if (this.sink.isTTY) {
      this.sink.write(`\r${renderProgress(snapshot, this.sink.columns ?? 80)}\x1b[K${final ? '\n' : ''}`);
      this.drawn = !final;
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
    if (this.drawn) this.sink.write('\n');
    this.drawn = false;
  }
}
