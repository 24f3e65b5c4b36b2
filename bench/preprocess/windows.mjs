// bench/preprocess/windows.mjs — interleaved timing windows for the pool quotients (N workers ÷ 1
// worker, N processes ÷ 1 process). Both sides live in child processes that stay up for the whole
// comparison, warmed up once, and the parent lets them work in turn in short windows (one, many,
// many, one, …). On a shared VM the speed of a core changes by tens of percent from one second to
// the next (measured here in 100 ms windows: one worker 760–1,400 images/s within 3 s, while a
// pure ALU loop stayed within ±5 %); short windows, alternated, see the same drift on both
// sides, where whole runs of seconds back to back did not. What they cannot cancel: each vCPU
// drifts on its own (a pinned ALU loop: 2,700–2,950 on one, 2,800–3,700 on the other, same
// seconds), and one worker runs on one of them at a time, so a round's quotient still spreads
// ±10 % here; the median of several rounds is reported.
//
// Child side: serveWindows() answers the parent's lines on stdin: "<ms>" runs the task flat out on
// `lanes` lanes for that long and answers "<count>" (tasks finished by the deadline: a task cut by
// it is not counted, and every lane is drained before the answer, so the next window starts idle);
// "quit" ends. Before "ready" it runs flat out for `warmupMs` (JIT tiers, buffer pools): in a fresh
// 2-worker pool here V8's compiler threads took 6–10 % of a core for the first three seconds
// (perf at 1 kHz: 105, 91, 63 samples/s, then 3–15) and the serving thread's own share fell from
// 8.8 % to 4.5 %; a lone worker's warm-up runs on the idle core, a second worker's does not.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';

/** Flat out on `lanes` lanes for `ms`: the tasks finished by the deadline. */
async function runFor(ms, lanes, task) {
  let count = 0;
  const deadline = performance.now() + ms;
  const lane = async () => {
    while (performance.now() < deadline) {
      await task();
      if (performance.now() <= deadline) count++;
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  return count;
}

/** Warms up, then serves the parent's windows until "quit" (see the header). */
export async function serveWindows({ lanes, task, warmupMs }) {
  await runFor(warmupMs, lanes, task);
  process.stdout.write('ready\n');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'quit') return;
    const ms = Number(line);
    if (!(ms > 0))
      throw new RangeError(`windows: expected a window length in ms, got ${JSON.stringify(line)}`);
    process.stdout.write(`${await runFor(ms, lanes, task)}\n`);
  }
}

/** The tasks per second of one warm run of `ms` (the one-shot form of a window). */
export async function rateFor({ lanes, task, warmupMs, ms }) {
  await runFor(warmupMs, lanes, task);
  return (await runFor(ms, lanes, task)) / (ms / 1000);
}

/** Spawns `node <argv>` speaking the window protocol; resolves once it is warm. */
async function windowChild(argv, fail) {
  const child = spawn(process.execPath, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  child.on('exit', (code) => {
    if (code !== 0) fail(`${argv[0]} exited ${code}`);
  });
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) fail(`${argv[0]} closed its output`);
    return value;
  };
  const first = await next();
  if (first !== 'ready') fail(`${argv[0]} said ${JSON.stringify(first)} instead of ready`);
  return {
    async window(ms) {
      child.stdin.write(`${ms}\n`);
      return Number(await next());
    },
    quit() {
      child.stdin.end('quit\n');
      return new Promise((done) => (child.exitCode === null ? child.once('exit', done) : done()));
    },
  };
}

/**
 * `one` and `many` are lists of child argv (each child speaks the protocol above; a side with
 * several children runs them at once). Alternates their windows `rounds` × `windowsPerRound` times
 * and returns each side's mean rate (tasks/s, its children summed) and every round's quotient
 * (many ÷ one, each from its own windows' summed counts).
 */
export async function interleavedRates({ one, many, rounds, windowsPerRound, windowMs, fail }) {
  const sides = [
    await Promise.all(one.map((argv) => windowChild(argv, fail))),
    await Promise.all(many.map((argv) => windowChild(argv, fail))),
  ];
  const totals = [0, 0];
  const ratios = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const counts = [0, 0];
      for (let w = 0; w < windowsPerRound; w++) {
        // one, many, then many, one: neither side always runs right after the other.
        for (const s of w % 2 === 0 ? [0, 1] : [1, 0]) {
          const got = await Promise.all(sides[s].map((c) => c.window(windowMs)));
          counts[s] += got.reduce((a, b) => a + b, 0);
        }
      }
      totals[0] += counts[0];
      totals[1] += counts[1];
      ratios.push(counts[1] / counts[0]);
    }
  } finally {
    await Promise.all(sides.flat().map((c) => c.quit()));
  }
  const seconds = (rounds * windowsPerRound * windowMs) / 1000;
  return { one: totals[0] / seconds, many: totals[1] / seconds, ratios };
}
