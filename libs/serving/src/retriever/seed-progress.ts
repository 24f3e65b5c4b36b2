import { ProgressMeter, type ProgressMeterOptions } from '@imagebind-llm/domain';
import type { IvfBuildProgress } from '@imagebind-llm/vector-store';

/** What a seed progress line logs (JSON fields), besides its event name. */
export interface SeedProgressFields {
  readonly event: 'store.seed_progress';
  readonly rows: number;
  readonly total: number;
  readonly percent: number | undefined;
  /** Rows per second over the last 30 s, once a second of history exists. */
  readonly rowsPerSecond: number | undefined;
  readonly etaSeconds: number | undefined;
}

/**
 * An `onProgress(written, total)` for seedCacheFromRepository / importFaissIndex that logs one
 * JSON line every 5 s or 10 % (and the last row) with rows, rate and ETA: the real 3.25 M-row
 * cache takes minutes, and a log line per batch would drown everything else.
 */
export function seedProgressLogger(
  log: (fields: SeedProgressFields) => void,
  options: ProgressMeterOptions & { readonly clock?: () => number } = {},
): (written: number, total: number) => void {
  const meter = new ProgressMeter(options);
  const clock = options.clock ?? Date.now;
  return (written, total) => {
    const now = clock();
    const r = meter.observe(now, written, total);
    if (!meter.due(r, now, written >= total)) return;
    log({
      event: 'store.seed_progress',
      rows: written,
      total,
      percent: r.percent,
      rowsPerSecond: r.perSecond === undefined ? undefined : Math.round(r.perSecond),
      etaSeconds: r.etaSeconds === undefined ? undefined : Math.round(r.etaSeconds),
    });
  };
}

/** What an index build progress line logs (JSON fields), besides its event name. */
export interface IndexProgressFields {
  readonly event: 'store.index_progress';
  /** `train`: k-means iterations done of total; `assign`: rows placed in their lists of total. */
  readonly phase: IvfBuildProgress['phase'];
  readonly done: number;
  readonly total: number;
  readonly percent: number | undefined;
  readonly etaSeconds: number | undefined;
}

/**
 * An `onIndexProgress` for seedCacheFromRepository / importFaissIndex: after the last row, a
 * streamed import trains and fills its IVF lists (minutes at 3.25 M rows), and this logs that as
 * one JSON line per phase every 5 s or 10 % (and each phase's end) with an ETA.
 */
export function indexProgressLogger(
  log: (fields: IndexProgressFields) => void,
  options: ProgressMeterOptions & { readonly clock?: () => number } = {},
): (progress: IvfBuildProgress) => void {
  const clock = options.clock ?? Date.now;
  let phase: IvfBuildProgress['phase'] | undefined;
  let meter = new ProgressMeter(options);
  return ({ phase: now, done, total }) => {
    if (now !== phase) {
      phase = now;
      meter = new ProgressMeter(options);
    }
    const at = clock();
    const r = meter.observe(at, done, total);
    if (!meter.due(r, at, done >= total)) return;
    log({
      event: 'store.index_progress',
      phase: now,
      done,
      total,
      percent: r.percent,
      etaSeconds: r.etaSeconds === undefined ? undefined : Math.round(r.etaSeconds),
    });
  };
}
