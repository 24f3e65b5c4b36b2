// The one progress-bar layout of the CLI (batch jobs, model builds, cache imports): a label, a bar
// filled in proportion, then figures, fitted to the terminal. On a terminal the line is redrawn in
// place; the rate and ETA arithmetic lives in @imagebind-llm/domain (shared with the services).

export interface ProgressSink {
  /** Writes raw text (no newline added) to the progress stream. */
  readonly write: (text: string) => void;
  /** True on a terminal: draw the bar in place. */
  readonly isTTY: boolean;
  /** Terminal width, when known. */
  readonly columns?: number | undefined;
}

/** The CLI's progress stream: stderr (stdout carries results). */
export function stderrSink(): ProgressSink {
  return {
    write: (text) => {
      process.stderr.write(text);
    },
    isTTY: process.stderr.isTTY === true,
    columns: process.stderr.columns,
  };
}

const MIN_BAR = 10;
// Wider bars say nothing more and make the line jump more when the counts grow a digit.
const MAX_BAR = 30;

export function renderBar(fraction: number, width: number): string {
  const filled = Math.floor(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

/**
 * One line of a terminal progress bar, at most `width - 1` characters (writing the last column
 * makes some terminals wrap). No control characters: {@link TerminalLine} adds them. The bar takes
 * the room left, up to 30 columns; narrow terminals lose the `optional` figures first (rate, ETA),
 * then the bar.
 */
export function fitProgressLine(
  label: string,
  fraction: number,
  essential: readonly string[],
  optional: readonly string[],
  width: number,
): string {
  const room = Math.max(1, Math.floor(width) - 1);
  for (const extra of [optional, []]) {
    const text = [...essential, ...extra].join('  ');
    // label + ' ' + [bar] + ' ' + text
    const barWidth = room - label.length - text.length - 4;
    if (barWidth >= MIN_BAR) return `${label} ${renderBar(fraction, Math.min(MAX_BAR, barWidth))} ${text}`;
  }
  for (const extra of [optional, []]) {
    const line = [label, ...essential, ...extra].join('  ');
    if (line.length <= room) return line;
  }
  return [label, ...essential].join('  ').slice(0, room);
}

/** A line redrawn in place on a terminal: `\r` + text + clear-to-end. */
export class TerminalLine {
  private drawn = false;

  constructor(private readonly sink: ProgressSink) {}

  get width(): number {
    return this.sink.columns ?? 80;
  }

  /** Redraws the line; `final` ends it with a newline so later output starts below. */
  draw(text: string, final = false): void {
    this.sink.write(`\r${text}\x1b[K${final ? '\n' : ''}`);
    this.drawn = !final;
  }

  /** Wipes a drawn line so a log line can take its place (the next draw brings it back). */
  clear(): void {
    if (this.drawn) this.sink.write('\r\x1b[K');
    this.drawn = false;
  }

  /** Ends a drawn line where it is (e.g. on Ctrl-C) so the next output starts on a new line. */
  interrupt(): void {
    if (this.drawn) this.sink.write('\n');
    this.drawn = false;
  }
}
