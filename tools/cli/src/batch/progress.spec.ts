import { describe, expect, it } from 'vitest';
import { ProgressReporter, renderPlainLine, renderProgress, type JobCounts } from './progress';

const running = { state: 'RUNNING', total: 200, succeeded: 80, failed: 10, cancelled: 0 };

describe('renderProgress', () => {
  it('draws state, a bar filled in proportion, percent, counts, rate and ETA within the width', () => {
    const line = renderProgress({ ...running, itemsPerSecond: 12.34, etaSeconds: 75 }, 80);
    expect(line).toBe(
      `RUNNING [${'#'.repeat(9)}${'-'.repeat(12)}]  45%  90/200  10 failed  12.3 items/s  ETA 1:15`,
    );
    expect(line.length).toBe(79);
  });

  it('caps the bar at 30 columns on a wide terminal', () => {
    expect(renderProgress(running, 200)).toBe(
      `RUNNING [${'#'.repeat(13)}${'-'.repeat(17)}]  45%  90/200  10 failed`,
    );
  });

  it('never writes the last column, whatever the width', () => {
    for (const width of [20, 40, 57, 58, 80, 120, 200]) {
      const line = renderProgress({ ...running, itemsPerSecond: 3, etaSeconds: 3700 }, width);
      expect(line.length).toBeLessThanOrEqual(width - 1);
    }
  });

  it('drops rate and ETA before the bar on a narrow terminal, then the bar', () => {
    const snapshot = { ...running, itemsPerSecond: 12.34, etaSeconds: 75 };
    const medium = renderProgress(snapshot, 50);
    expect(medium).toMatch(/^RUNNING \[#+-+\] {2}45% {2}90\/200 {2}10 failed$/);
    const narrow = renderProgress(snapshot, 36);
    expect(narrow).toBe('RUNNING   45%  90/200  10 failed');
  });

  it('shows 100% only when every item is done, and cancelled items', () => {
    expect(renderProgress({ ...running, succeeded: 199, failed: 0 }, 60)).toContain(' 99%');
    const done = renderProgress({ state: 'CANCELLED', total: 4, succeeded: 1, failed: 0, cancelled: 3 }, 60);
    expect(done).toContain('100%');
    expect(done).toContain('3 cancelled');
    expect(done).toContain(`[${'#'.repeat(done.indexOf(']') - done.indexOf('[') - 1)}]`);
  });

  it('handles a job whose total is not known yet', () => {
    const line = renderProgress({ state: 'QUEUED', total: 0, succeeded: 0, failed: 0, cancelled: 0 }, 40);
    expect(line).toMatch(/^QUEUED \[-+\] {2}--% {2}0\/0$/);
  });
});

describe('renderPlainLine', () => {
  it('says the counts in words, with the job id', () => {
    expect(renderPlainLine(running, 'job-1')).toBe(
      'job job-1 RUNNING 90/200 (45%): 80 succeeded, 10 failed, 0 cancelled',
    );
    expect(renderPlainLine({ ...running, itemsPerSecond: 2, etaSeconds: 55 })).toBe(
      'RUNNING 90/200 (45%): 80 succeeded, 10 failed, 0 cancelled [2.0 items/s, ETA 0:55]',
    );
  });
});

describe('ProgressReporter', () => {
  const at = (succeeded: number, state = 'RUNNING'): JobCounts => ({
    state,
    total: 10,
    succeeded,
    failed: 0,
    cancelled: 0,
  });

  it('on a non-terminal prints a line only when the numbers change, at most once per second', () => {
    const written: string[] = [];
    const reporter = new ProgressReporter({ write: (t) => written.push(t), isTTY: false }, 'j');
    reporter.update(at(1), 0);
    reporter.update(at(1), 1500); // unchanged: nothing
    reporter.update(at(2), 1800); // changed, but only 300 ms after the last line
    reporter.update(at(2), 2600); // still the unprinted numbers, now allowed
    reporter.update(at(10, 'SUCCEEDED'), 2700, true); // a final line is never held back
    expect(written.map((l) => l.replace(/ \[.*\]/, ''))).toEqual([
      'job j RUNNING 1/10 (10%): 1 succeeded, 0 failed, 0 cancelled\n',
      'job j RUNNING 2/10 (20%): 2 succeeded, 0 failed, 0 cancelled\n',
      'job j SUCCEEDED 10/10 (100%): 10 succeeded, 0 failed, 0 cancelled\n',
    ]);
  });

  it('on a terminal redraws one line in place and ends it when final', () => {
    const written: string[] = [];
    const reporter = new ProgressReporter({ write: (t) => written.push(t), isTTY: true, columns: 60 }, 'j');
    reporter.update(at(1), 0);
    reporter.update(at(1), 100);
    reporter.update(at(10, 'SUCCEEDED'), 2000, true);
    expect(written).toHaveLength(3);
    for (const w of written) expect(w.startsWith('\r')).toBe(true);
    expect(written[2]!.endsWith('\x1b[K\n')).toBe(true);
    expect(written[0]!.includes('\n')).toBe(false);
  });
});
