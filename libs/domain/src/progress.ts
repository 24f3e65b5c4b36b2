// Rate, ETA and "is a log line due" for long steps (model builds, cache imports, batch jobs). Pure:
// the caller passes the clock, so the arithmetic is tested without waiting. Shared by the CLI's
// progress bar and the services' periodic JSON lines, so both say the same numbers.

/** Units per second and seconds left, when enough history exists to say. */
export interface RateEstimate {
  readonly perSecond: number | undefined;
  readonly etaSeconds: number | undefined;
}

/**
 * Units per second over a sliding window of recent samples, so the rate follows the current pace
 * rather than the average since the start (a step that waited, or one that sped up, would lie).
 */
export class RateEstimator {
  private readonly samples: { atMs: number; done: number }[] = [];

  constructor(private readonly windowMs = 30_000) {}

  /** Records `done` units at `atMs` and returns the rate and the ETA for `total`. */
  observe(atMs: number, done: number, total: number): RateEstimate {
    this.samples.push({ atMs, done });
    while (this.samples.length > 2 && atMs - this.samples[1]!.atMs >= this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const elapsedMs = atMs - first.atMs;
    // Under a second of history, or a count that went backwards, says nothing reliable.
    if (elapsedMs < 1000 || done < first.done) return { perSecond: undefined, etaSeconds: undefined };
    const perSecond = ((done - first.done) * 1000) / elapsedMs;
    const remaining = Math.max(0, total - done);
    return { perSecond, etaSeconds: perSecond > 0 ? remaining / perSecond : undefined };
  }
}

/** `0:07`, `12:05`, `1:02:03`. */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** Decimal units, as disks and `MB/s` are quoted: `812 B`, `4.2 MB`, `13.30 GB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${Math.max(0, Math.round(bytes))} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2)} ${units[unit]!}`;
}

/** `210.3 MB/s` — one unit for every byte rate, so successive lines compare at a glance. */
export function formatByteRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
}

/** One look at a long step: what is done, how fast, how long until the end. */
export interface ProgressReport extends RateEstimate {
  readonly done: number;
  readonly total: number;
  /** Whole percent, rounded down so 100 means finished; undefined while the total is 0. */
  readonly percent: number | undefined;
}

export interface ProgressMeterOptions {
  /** A plain line at least this often while the count moves. Default 5 s. */
  readonly intervalMs?: number;
  /** ...and whenever the count crosses another multiple of this percentage. Default 10. */
  readonly stepPercent?: number;
  /** Sliding window of the rate. Default 30 s. */
  readonly windowMs?: number;
  /**
   * No line until the step has run this long, so a step that ends sooner says nothing at all (a
   * small build logs as it did before progress existed). Default 0.
   */
  readonly quietMs?: number;
}

/**
 * Follows one step (one total): measures it on every update and says when a plain line is due —
 * every `intervalMs`, at every `stepPercent`, and at the end — so a log gets a readable number of
 * lines whether the step takes seconds or hours.
 */
export class ProgressMeter {
  private readonly rate: RateEstimator;
  private readonly intervalMs: number;
  private readonly stepPercent: number;
  private readonly quietMs: number;
  private startMs: number | undefined;
  private lastLogMs: number | undefined;
  private lastLogStep = -1;
  private lastLogDone = -1;
  private finalLogged = false;

  constructor(options: ProgressMeterOptions = {}) {
    this.rate = new RateEstimator(options.windowMs);
    this.intervalMs = options.intervalMs ?? 5000;
    this.stepPercent = options.stepPercent ?? 10;
    this.quietMs = options.quietMs ?? 0;
  }

  /** Milliseconds since the first observation (0 before it). */
  elapsedMs(nowMs: number): number {
    return this.startMs === undefined ? 0 : nowMs - this.startMs;
  }

  /** Measures `done` of `total` at `nowMs`. */
  observe(nowMs: number, done: number, total: number): ProgressReport {
    this.startMs ??= nowMs;
    const { perSecond, etaSeconds } = this.rate.observe(nowMs, done, total);
    const percent = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : undefined;
    return { done, total, percent, perSecond, etaSeconds };
  }

  /**
   * True when `report` (taken at `nowMs`) deserves a plain line: the first one, one after
   * `intervalMs`, one that reached another `stepPercent`, or the final one; never the same count
   * twice, and nothing within `quietMs` of the start. Records the line as written when it answers
   * true.
   */
  due(report: ProgressReport, nowMs: number, final = false): boolean {
    // The same count twice says nothing new, unless the second one closes the step.
    if (report.done === this.lastLogDone && (!final || this.finalLogged)) return false;
    if (this.lastLogMs === undefined && nowMs - (this.startMs ?? nowMs) < this.quietMs) return false;
    const step = Math.floor((report.percent ?? 0) / this.stepPercent);
    const due =
      final ||
      this.lastLogMs === undefined ||
      nowMs - this.lastLogMs >= this.intervalMs ||
      step > this.lastLogStep;
    if (!due) return false;
    this.lastLogMs = nowMs;
    this.lastLogStep = step;
    this.lastLogDone = report.done;
    this.finalLogged = final;
    return true;
  }
}
