import { ProgressMeter, type ProgressMeterOptions } from '@imagebind-llm/domain';

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
