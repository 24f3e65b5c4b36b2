import { describe, expect, it } from 'vitest';
import { PhaseProgressReporter } from './phase-progress';

/** A sink that records what was written, and a clock the test moves by hand. */
function harness(isTTY: boolean, columns = 100) {
  const written: string[] = [];
  let now = 0;
  const reporter = new PhaseProgressReporter(
    { write: (t) => written.push(t), isTTY, columns },
    { clock: () => now },
  );
  return {
    written,
    reporter,
    at(ms: number) {
      now = ms;
      return reporter;
    },
  };
}

const GB = 1e9;
const CLEAR_TO_END = '\x1b[K';

describe('PhaseProgressReporter, not a terminal', () => {
  it('prints plain lines every 10 % or 5 s with bytes, rate and ETA, and a closing line', () => {
    const h = harness(false);
    const phase = 'llama-decoder/model.onnx';
    h.at(0).update({ phase, done: 0, total: 10 * GB });
    h.at(2000).update({ phase, done: 0.4 * GB, total: 10 * GB }); // 4 %, first line after 1 s
    h.at(3000).update({ phase, done: 0.6 * GB, total: 10 * GB }); // 6 %: no
    h.at(4000).update({ phase, done: 1.0 * GB, total: 10 * GB }); // 10 %: yes
    h.at(9000).update({ phase, done: 1.5 * GB, total: 10 * GB }); // 15 %, 5 s later: yes
    h.at(20_000).update({ phase, done: 10 * GB, total: 10 * GB, final: true });
    expect(h.written).toEqual([
      '  llama-decoder/model.onnx    4%  400 MB/10.0 GB  200.0 MB/s  ETA 0:48\n',
      '  llama-decoder/model.onnx   10%  1.00 GB/10.0 GB  250.0 MB/s  ETA 0:36\n',
      '  llama-decoder/model.onnx   15%  1.50 GB/10.0 GB  166.7 MB/s  ETA 0:51\n',
      // The closing line gives the step's average rate and its duration.
      '  llama-decoder/model.onnx  100%  10.0 GB/10.0 GB  500.0 MB/s  in 0:20\n',
    ]);
  });

  it('says nothing of a step shorter than a second', () => {
    const h = harness(false);
    h.at(0).update({ phase: 'sha256 params.json', done: 0, total: 96 });
    h.at(5).update({ phase: 'sha256 params.json', done: 96, total: 96, final: true });
    expect(h.written).toEqual([]);
  });

  it('closes a step left open when the next one starts', () => {
    const h = harness(false);
    h.at(0).update({ phase: 'a', done: 0, total: 100 });
    h.at(1500).update({ phase: 'a', done: 50, total: 100 });
    h.at(3000).update({ phase: 'b', done: 0, total: 100 });
    expect(h.written).toEqual([
      '  a   50%  50 B/100 B  0.0 MB/s  ETA 0:02\n',
      '  a   50%  50 B/100 B  0.0 MB/s  in 0:03\n',
    ]);
  });
});

describe('PhaseProgressReporter, on a terminal', () => {
  it('redraws one bar line in place, throttled, and ends it with a newline when the step closes', () => {
    const h = harness(true, 100);
    const phase = 'knn-cache/vectors.npy';
    h.at(0).update({ phase, done: 0, total: 13.3 * GB });
    h.at(50).update({ phase, done: 0.1 * GB, total: 13.3 * GB }); // within 100 ms: not drawn
    h.at(2000).update({ phase, done: 2.66 * GB, total: 13.3 * GB });
    h.at(30_000).update({ phase, done: 13.3 * GB, total: 13.3 * GB, final: true });
    expect(h.written).toHaveLength(3);
    for (const w of h.written) expect(w.startsWith('\r')).toBe(true);
    expect(h.written[1]).toBe(
      `\rknn-cache/vectors.npy [${'#'.repeat(6)}${'-'.repeat(24)}]  20%  2.66 GB/13.3 GB  1330.0 MB/s  ETA 0:08\x1b[K`,
    );
    expect(h.written[2]!.endsWith('in 0:30\x1b[K\n')).toBe(true);
    for (const w of h.written)
      expect(w.replace('\r', '').replace(CLEAR_TO_END, '').replace('\n', '').length).toBeLessThan(100);
  });

  it('wipes the bar for a log line and leaves no line behind for a step that took no time', () => {
    const h = harness(true);
    h.at(0).update({ phase: 'bind/model.onnx', done: 10, total: 100 });
    h.reporter.clear(); // a log line comes
    h.at(200).update({ phase: 'bind/model.onnx', done: 50, total: 100 });
    h.at(300).update({ phase: 'bind/model.onnx', done: 100, total: 100, final: true });
    expect(h.written).toEqual([
      expect.stringMatching(/^\rbind\/model\.onnx \[#+-+\] {2}10% {2}10 B\/100 B.\[K$/),
      '\r\x1b[K',
      expect.stringMatching(/^\rbind\/model\.onnx \[#+-+\] {2}50% {2}50 B\/100 B/),
      '\r\x1b[K',
    ]);
  });

  it('on interrupt ends the drawn bar on its own line', () => {
    const h = harness(true);
    h.at(0).update({ phase: 'x', done: 1, total: 2 });
    h.reporter.interrupt();
    expect(h.written.at(-1)).toBe('\n');
  });
});
