#!/usr/bin/env node
// bench/preprocess/pool-rate.mjs — images per second through a PreprocessPool of --workers, in a
// process that loads nothing else (run.mjs spawns it with --serve for its pool quotients: see
// windows.mjs). A process whose heap
// holds much more code, such as run.mjs itself, answers the same work with more of its event loop
// spent in garbage collection: each 600 KB tensor that arrives from a worker is external memory,
// and there V8 starts a major GC for "external memory pressure" every few dozen images. --loaded
// first imports what run.mjs imports (the model builder, onnxruntime, sharp, …) to measure that
// case too (run.mjs: workers_ratio_loaded_process).
//
// Each tensor is recycled (PreprocessPool.recycle) once it has arrived, as the encoder runtime
// does; --no-recycle drops it instead, leaving it to the garbage collector.
//
// --inputs image,audio,point,video times those golden inputs in turn (default: the image alone).
// Four tasks per worker stay in flight, each finished one replaced at once (no barrier between
// rounds, which would idle every worker but the slowest at each round's end, as a server's steady
// stream of requests never does). The pool first runs flat out for --warmup-seconds.
//
//   node bench/preprocess/pool-rate.mjs --workers N [--seconds 2] [--warmup-seconds 3] [--golden DIR]
//       [--loaded] [--no-recycle] [--inputs image] [--serve]
// The last stdout line is the rate; --serve answers windows instead (windows.mjs).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PreprocessPool } from '@imagebind-llm/preprocess';
import { rateFor, serveWindows } from './windows.mjs';

const { values: args } = parseArgs({
  options: {
    workers: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '2' },
    'warmup-seconds': { type: 'string', default: '3' },
    serve: { type: 'boolean', default: false },
    golden: {
      type: 'string',
      default: join(import.meta.dirname, '..', '..', '..', 'shared', 'golden', 'tiny-a'),
    },
    loaded: { type: 'boolean', default: false },
    'no-recycle': { type: 'boolean', default: false },
    inputs: { type: 'string', default: 'image' },
  },
});
if (args.loaded) {
  for (const name of [
    'sharp',
    '@imagebind-llm/model-builder',
    '@imagebind-llm/inference',
    '@imagebind-llm/checkpoint',
  ])
    await import(name);
}
const workers = Number(args.workers);
const recycle = !args['no-recycle'];
const budgetMs = Number(args.seconds) * 1000;
const warmupMs = Number(args['warmup-seconds']) * 1000;
if (!Number.isSafeInteger(workers) || workers < 1 || !(budgetMs > 0) || !(warmupMs >= 0)) {
  process.stderr.write(
    `pool-rate: bad --workers ${args.workers}, --seconds ${args.seconds} or --warmup-seconds ${args['warmup-seconds']}\n`,
  );
  process.exit(2);
}
const golden = (name) => readFileSync(join(args.golden, 'inputs', name));
// --inputs: which golden inputs, in turn (default the image; per worker on this VM an image takes
// ~0.5 ms, the WAV ~10 ms, the cloud ~11 ms, the video ~30 ms).
const KINDS = {
  image: () => ({ kind: 'image', bytes: golden('girl.jpg') }),
  audio: () => ({ kind: 'audio', bytes: golden('girl_bgm.wav') }),
  point: () => ({
    kind: 'point',
    bytes: golden('airplane.pt'),
    fileName: 'airplane.pt',
    grouping: { numGroup: 512, groupSize: 32 },
  }),
  video: () => ({ kind: 'video', bytes: golden('landscape_320x240_10fps_5.3s.mp4') }),
};
const kinds = args.inputs.split(',');
if (kinds.some((k) => KINDS[k] === undefined)) {
  process.stderr.write(`pool-rate: --inputs takes ${Object.keys(KINDS).join(', ')} (got ${args.inputs})\n`);
  process.exit(2);
}
const tasks = kinds.map((k) => KINDS[k]());
const pool = new PreprocessPool({ workers, maxQueue: 1024 });
let next = 0;
// The tensor goes back to the pool once used, as the encoder runtime does after its batch ran.
const task = async () => {
  const output = await pool.run(tasks[next++ % tasks.length]);
  if (recycle && output.kind === 'tensor') pool.recycle(output.data);
};
try {
  const lanes = 4 * workers;
  if (args.serve) await serveWindows({ lanes, task, warmupMs });
  else process.stdout.write(`${await rateFor({ lanes, task, warmupMs, ms: budgetMs })}\n`);
} finally {
  await pool.close();
}
