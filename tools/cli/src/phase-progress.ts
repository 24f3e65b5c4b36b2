// Progress of the long steps of one command (reading checkpoints, writing weights, copying the
// cache): a bar redrawn in place on a terminal; on anything else plain lines every few seconds or
// every 10 %, newline-terminated, with the same figures (tools/scripts/fullsize-stack.mjs and CI
// logs read them line by line).
import {
  formatByteRate,
  formatBytes,
  formatDuration,
  ProgressMeter,
  type ProgressMeterOptions,
  type ProgressReport,
} from '@imagebind-llm/domain';
import { fitProgressLine, TerminalLine, type ProgressSink } from './progress-line';

/** One update of a step: `done` of `total` units; `final` closes the step. */
export interface PhaseUpdate {
  readonly phase: string;
  readonly done: number;
  readonly total: number;
  readonly final?: boolean;
}

export interface PhaseProgressOptions extends ProgressMeterOptions {
  /** What is counted: bytes (sizes and MB/s) or rows (counts and rows/s). Default bytes. */
  readonly unit?: 'bytes' | 'rows';
  /** Milliseconds since some fixed origin; Date.now by default (tests pass a fake clock). */
  readonly clock?: () => number;
  /** Least time between two redraws of the terminal bar. Default 100 ms. */
  readonly redrawMs?: number;
}

/** Steps shorter than this show nothing (plain) or vanish when done (terminal). */
const QUIET_MS = 1000;

interface Current {
  readonly phase: string;
  readonly meter: ProgressMeter;
  lastDrawMs: number;
  last: PhaseUpdate | undefined;
}

/** Shows the steps of one command, one after the other, and lets log lines pass between them. */
export class PhaseProgressReporter {
  private readonly line: TerminalLine;
  private readonly clock: () => number;
  private current: Current | undefined;

  constructor(
    private readonly sink: ProgressSink,
    private readonly options: PhaseProgressOptions = {},
  ) {
    this.line = new TerminalLine(sink);
    this.clock = options.clock ?? Date.now;
  }

  update(update: PhaseUpdate): void {
    const nowMs = this.clock();
    if (this.current?.phase !== update.phase) {
      this.close();
      this.current = {
        phase: update.phase,
        meter: new ProgressMeter({ quietMs: QUIET_MS, ...this.options }),
        lastDrawMs: -Infinity,
        last: undefined,
      };
    }
    const current = this.current;
    current.last = update;
    const final = update.final === true;
    const report = current.meter.observe(nowMs, update.done, update.total);
    const elapsedMs = current.meter.elapsedMs(nowMs);
    const elapsedSeconds = elapsedMs / 1000;
    if (this.sink.isTTY) {
      if (!final && nowMs - current.lastDrawMs < (this.options.redrawMs ?? 100)) return;
      current.lastDrawMs = nowMs;
      if (final && elapsedMs < (this.options.quietMs ?? QUIET_MS)) {
        // A step that took no time leaves no line behind.
        this.line.clear();
        this.current = undefined;
        return;
      }
      const { essential, optional } = this.figures(report, final, elapsedSeconds);
      const fraction = report.total > 0 ? report.done / report.total : 0;
      this.line.draw(fitProgressLine(update.phase, fraction, essential, optional, this.line.width), final);
    } else if (current.meter.due(report, nowMs, final)) {
      const { essential, optional } = this.figures(report, final, elapsedSeconds);
      this.sink.write(`  ${[update.phase, ...essential, ...optional].join('  ')}\n`);
    }
    if (final) this.current = undefined;
  }

  /** Wipes the bar before a log line is written (the next update redraws it below that line). */
  clear(): void {
    this.line.clear();
  }

  /** Ends the running step as it stands (a step that never said `final`) with its last figures. */
  close(): void {
    const last = this.current?.last;
    if (last !== undefined && last.final !== true) this.update({ ...last, final: true });
    this.current = undefined;
  }

  /** On Ctrl-C: leaves the bar as it was, on its own line, so the next message starts below it. */
  interrupt(): void {
    this.line.interrupt();
    this.current = undefined;
  }

  private figures(
    r: ProgressReport,
    final: boolean,
    elapsedSeconds: number,
  ): { essential: string[]; optional: string[] } {
    const bytes = (this.options.unit ?? 'bytes') === 'bytes';
    const amount = (n: number): string => (bytes ? formatBytes(n) : String(n));
    const essential = [
      r.percent === undefined ? ' --%' : `${String(r.percent).padStart(3)}%`,
      `${amount(r.done)}/${amount(r.total)}${bytes ? '' : ' rows'}`,
    ];
    const optional: string[] = [];
    // The step's average at the end (the window's rate would only say how it finished).
    const perSecond = final && elapsedSeconds > 0 ? r.done / elapsedSeconds : r.perSecond;
    if (perSecond !== undefined && Number.isFinite(perSecond)) {
      optional.push(bytes ? formatByteRate(perSecond) : `${perSecond.toFixed(0)} rows/s`);
    }
    if (final) optional.push(`in ${formatDuration(elapsedSeconds)}`);
    else if (r.etaSeconds !== undefined && Number.isFinite(r.etaSeconds)) {
      optional.push(`ETA ${formatDuration(r.etaSeconds)}`);
    }
    return { essential, optional };
  }
}
