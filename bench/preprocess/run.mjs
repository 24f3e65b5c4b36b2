#!/usr/bin/env node
// bench/preprocess — preprocessing throughput per core on the golden example inputs (per stage and
// end to end), optionally side by side with the official-library reference, the PreprocessPool's
// N workers ÷ 1 worker, and encoder throughput at batch 1 vs batch 8 on one session.
//
//   npm run build && node bench/preprocess/run.mjs [--seconds 2] [--json] [--reference]
//       [--rounds 1] [--workers N] [--pool-rounds 5] [--pool-windows 20] [--window-ms 100] [--warmup-seconds 3]
//       [--cpu 0] [--no-pin] [--no-encoder] [--no-loop] [--golden DIR]
//       [--python /usr/bin/python3]
//       [--vision-dim 384] [--vision-blocks 4] [--vision-heads 6]
//
// Per core: the modality measurements (and the reference, when asked) run in a child process pinned
// to one CPU with `taskset -c <cpu>` (ffmpeg and libvips threads included), one input at a time;
// --no-pin measures in this process instead. --workers N (default: the CPU count) times golden
// images through a PreprocessPool of N workers and of 1 worker, unpinned, each pool in a process of
// its own that loads only the pool (pool-rate.mjs --serve), both warmed up (--warmup-seconds) and
// kept up while they work in turn in --window-ms windows (windows.mjs): --pool-rounds rounds of
// --pool-windows windows a side, each round's quotient from its own windows, and prints the median
// round (and each one); the same in a process that also loads this script's imports
// (workers_ratio_loaded_process), with every golden input in turn, and for N separate processes ÷
// 1, the machine's own ceiling for that quotient. (Until 2026-12-07 each side ran once for
// --seconds, in 5 adjacent pairs of fresh processes: on this VM a core's speed drifts more within
// a pair than the quotient's own error, and the first second of each run was JIT warm-up.)
//
// --reference runs ../shared/bench/p1_reference.py (PIL + torchvision, torchaudio, PyAV + torch, the
// official loaders' operations, which first checks its tensors against the golden ones) on the same
// inputs for the same --seconds, on the same pinned CPU with one torch/OpenMP thread, right after
// ours, and prints ours ÷ reference per modality. --rounds R repeats (ours, reference) R times and
// reports the medians (each ratio paired within its round): on a shared machine use 3 or 5. It needs Debian's packages (not installed by CI):
//
//   apt-get install -y python3-torch python3-torchvision python3-torchaudio python3-av
//
// The reference has no point-cloud case; the point rate is also divided by the issue #15 table's
// 8.6 clouds/s ("today", another machine: not a side-by-side ratio).
//
// The event loop under load (issue #15; --no-loop skips it): 20 concurrent tasks, a 12 MP JPEG, a
// 10-minute FLAC and a 200 k-point cloud in turn, through a PreprocessPool of --workers, while this
// thread samples its own loop delay and a poller GETs a /healthz served on the same loop every 50 ms
// on a fresh connection (as a kubelet probes). The delay is monitorEventLoopDelay's interval less
// its resolution: the histogram records the whole timer interval, so an idle loop reads ≈ the
// resolution, not 0 (Node's perf_hooks; OpenTelemetry's runtime-node issue #2794 subtracts it too).
// The process's first probe (cold HTTP code) runs before the load and is reported apart.
//
// --json: the last stdout line is one JSON object: image_per_s, audio_files_per_s, video_per_s,
// point_per_s (per core, end to end as a worker runs them), the stages as the pipeline runs them,
// native (which paths the ibllm_media addon runs: mediaNativeStatus), and with --reference
// reference.* and ratio_image/ratio_audio/ratio_video; with the pool, workers_ratio (the median
// round) and workers_ratios (every round), pool_rounds/pool_windows_per_round/pool_window_ms/
// pool_warmup_s, workers_ratio_loaded_process (the same with this script's
// imports loaded), workers_ratio_all_inputs (the golden image, WAV, cloud and video in turn), and beside them processes_ratio / processes_ratios (N
// separate processes ÷ 1, the machine's ceiling for that quotient); loop.* (the
// delay p99 and max in ms, the slowest /healthz in ms, how many answered, the cold first probe, and
// the garbage collections on the loop meanwhile: gc_pauses, gc_max_ms, gc_total_ms). Timings are
// measured, never asserted: compare ratios taken in one run, machines are noisy.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createServer, get } from 'node:http';
import { existsSync, readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import sharp from 'sharp';
import {
  decodeImageRgb,
  preprocessRgbImage,
  decodeWav,
  preprocessWaveform,
  preprocessVideo,
  probeVideo,
  listFramePts,
  decodeFramesRgb,
  decodeChosenFramesInProcess,
  mediaNative,
  mediaNativeStatus,
  nativeVideo,
  probeVideoPacketsInProcess,
  tokenizeClipText,
  parsePointCloud,
  groupPointCloud,
  runPreprocessTask,
  PreprocessPool,
  ReusableBuffers,
} from '@imagebind-llm/preprocess';
import {
  buildVisionGraph,
  defaultImageBindConfig,
  encoderKeys,
  serializeModel,
  WeightStore,
} from '@imagebind-llm/model-builder';
import { createOrtSession, hostTensor } from '@imagebind-llm/inference';
import { interleavedRates, serveWindows } from './windows.mjs';
import { encodeNpy, float32Tensor } from '@imagebind-llm/checkpoint';

const self = fileURLToPath(import.meta.url);
const repoRoot = resolve(dirname(self), '..', '..');
const REFERENCE_APT = 'apt-get install -y python3-torch python3-torchvision python3-torchaudio python3-av';
/** Issue #15's "today" for point clouds (FPS + kNN, another machine): the goal is 3× this. */
const POINT_ISSUE_TODAY_PER_S = 8.6;
/** The official checkpoint's grouping (Point-BERT yaml: 512 groups of 32, MODEL_SPEC §3.7). */
const GROUPING = { numGroup: 512, groupSize: 32 };

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    workers: { type: 'string', default: String(availableParallelism()) },
    json: { type: 'boolean', default: false },
    reference: { type: 'boolean', default: false },
    python: { type: 'string', default: '/usr/bin/python3' },
    'reference-script': {
      type: 'string',
      default: resolve(repoRoot, '..', 'shared', 'bench', 'p1_reference.py'),
    },
    cpu: { type: 'string', default: '0' },
    'no-pin': { type: 'boolean', default: false },
    'no-encoder': { type: 'boolean', default: false },
    'no-loop': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
    'pool-rounds': { type: 'string', default: '5' },
    'pool-windows': { type: 'string', default: '20' },
    'window-ms': { type: 'string', default: '100' },
    'warmup-seconds': { type: 'string', default: '3' },
    'vision-dim': { type: 'string', default: '384' },
    'vision-blocks': { type: 'string', default: '4' },
    'vision-heads': { type: 'string', default: '6' },
    golden: { type: 'string', default: resolve(repoRoot, '..', 'shared', 'golden', 'tiny-a') },
    // Internal: the pinned child that measures the modalities (and the reference) and prints JSON.
    'per-core-child': { type: 'boolean', default: false },
    // Internal: one process preprocessing golden images in its own thread, serving windows.
    'image-loop-child': { type: 'boolean', default: false },
  },
});
const seconds = Number(args.seconds);
const warmupSeconds = Number(args['warmup-seconds']);
if (!(seconds > 0)) throw new RangeError(`--seconds must be a positive number (got ${args.seconds})`);
if (!(warmupSeconds >= 0))
  throw new RangeError(`--warmup-seconds must be a number ≥ 0 (got ${args['warmup-seconds']})`);
const budgetMs = seconds * 1000;
const roundCount = Number(args.rounds);
if (!Number.isSafeInteger(roundCount) || roundCount < 1)
  throw new RangeError(`--rounds must be a positive integer (got ${args.rounds})`);
const input = (name) => readFileSync(join(args.golden, 'inputs', name));
const say = (line) => process.stdout.write(`${line}\n`);
const fail = (message) => {
  process.stderr.write(`bench/preprocess: ${message}\n`);
  process.exit(2);
};

/** Runs fn repeatedly for about the time budget; returns operations per second. */
async function rate(fn) {
  await fn();
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < budgetMs) {
    await fn();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}
const fmt = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const round = (x, digits = 3) => Number(x.toPrecision(digits + 1));

/** Checks python3 and the reference's modules before anything is timed; exits with the apt-get line. */
function checkReference() {
  if (!existsSync(args['reference-script']))
    fail(`--reference: no reference script at ${args['reference-script']}`);
  const probe = spawnSync(args.python, ['-c', 'import numpy, PIL, torch, torchvision, torchaudio, av'], {
    encoding: 'utf8',
  });
  if (probe.error !== undefined)
    fail(
      `--reference needs ${args.python} (${probe.error.message}); install the reference's deps with: ${REFERENCE_APT}`,
    );
  if (probe.status !== 0) {
    const missing = /No module named '([^']+)'/.exec(probe.stderr)?.[1];
    fail(
      `--reference: ${args.python} cannot import ${missing ?? 'the reference modules'}` +
        `${missing === undefined ? ` (${probe.stderr.trim().split('\n').at(-1)})` : ''}; install them with: ${REFERENCE_APT}`,
    );
  }
}

/** Runs p1_reference.py with one thread on this process's CPUs; returns its parsed JSON. */
function runReference() {
  return new Promise((done) => {
    const child = spawn(
      args.python,
      [args['reference-script'], '--golden', args.golden, '--seconds', String(seconds), '--json'],
      {
        env: { ...process.env, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) fail(`reference exited ${code}: ${err.trim() || out.trim()}`);
      try {
        done(JSON.parse(last));
      } catch {
        fail(`reference printed no JSON line: ${out.trim()} ${err.trim()}`);
      }
    });
  });
}

/**
 * One task as a pool worker runs it: into the buffers a worker reuses, its tensor then recycled as
 * the encoder runtime recycles what it has batched (PreprocessPool.recycle).
 */
const workerBuffers = new ReusableBuffers();
async function asWorker(task) {
  const output = await runPreprocessTask(task, {}, workerBuffers);
  if (output.kind === 'tensor') workerBuffers.keep([output.data.buffer]);
  return output;
}

/** The modalities on one core, one input at a time: end to end as a worker runs them, and by stage. */
async function measureOurs() {
  // libvips on one thread: the pin keeps it on one core anyway, this keeps it from time-slicing.
  sharp.concurrency(1);
  const out = { stages: {}, native: mediaNativeStatus() };
  const st = out.stages;
  say(
    `ibllm_media addon: image ${out.native.image}, video ${out.native.video}, point ${out.native.point}${out.native.resizeKernel === undefined ? '' : `; resize loops ${out.native.resizeKernel}, allocator thresholds ${out.native.allocatorTuned ? 'set' : 'glibc default'}`}${out.native.reason === undefined ? '' : ` (${out.native.reason})`}`,
  );

  // ---- image (the stages as the pipeline runs them: the addon's C where it is built) ----
  const jpeg = input('girl.jpg');
  const decoded = await decodeImageRgb(jpeg);
  st.image_decode_per_s = await rate(() => decodeImageRgb(jpeg));
  st.image_resize_crop_normalise_per_s = await rate(() => preprocessRgbImage(decoded));
  out.image_per_s = await rate(() => asWorker({ kind: 'image', bytes: jpeg }));
  const imagePath = out.native.image ? 'libjpeg-turbo + C resample' : 'sharp + TypeScript resample';
  say(
    `image ${decoded.width}×${decoded.height} jpeg (${imagePath}): decode ${fmt(st.image_decode_per_s)}/s, resize+crop+normalise ${fmt(st.image_resize_crop_normalise_per_s)}/s → end to end ${fmt(out.image_per_s)} images/s`,
  );

  // ---- audio (3 clips per file) ----
  const wav = input('girl_bgm.wav');
  const wave = decodeWav(wav);
  st.audio_decode_per_s = await rate(() => decodeWav(wav));
  st.audio_resample_fbank_per_s = await rate(() => preprocessWaveform(wave));
  out.audio_files_per_s = await rate(() => asWorker({ kind: 'audio', bytes: wav }));
  out.audio_clips_per_s = 3 * out.audio_files_per_s;
  say(
    `audio ${(wav.length / 1e6).toFixed(1)} MB wav: decode ${fmt(st.audio_decode_per_s)}/s, resample+fbank+normalise ${fmt(st.audio_resample_fbank_per_s)}/s → end to end ${fmt(out.audio_files_per_s)} files/s = ${fmt(out.audio_clips_per_s)} clips/s`,
  );

  // ---- text ----
  out.text_per_s = await rate(() => tokenizeClipText('A dog playing in the snow next to a red car.'));
  say(`text: ${fmt(out.text_per_s)} prompts/s (CLIP BPE, 77 tokens)`);

  // ---- point cloud ----
  const pt = input('airplane.pt');
  const cloud = await parsePointCloud(pt, 'airplane.pt');
  st.point_load_per_s = await rate(() => parsePointCloud(pt, 'airplane.pt'));
  st.point_group_per_s = await rate(() => groupPointCloud(cloud, GROUPING));
  out.point_per_s = await rate(() =>
    asWorker({ kind: 'point', bytes: pt, fileName: 'airplane.pt', grouping: GROUPING }),
  );
  say(
    `point ${cloud.count} points (${out.native.point ? 'C' : 'TypeScript'} FPS + kNN): load ${fmt(st.point_load_per_s)}/s, FPS + kNN grouping ${fmt(st.point_group_per_s)}/s → end to end ${fmt(out.point_per_s)} clouds/s`,
  );

  // ---- video: probe + decode of the sampled frames (in process with the addon, else the ffmpeg
  // command lines) vs the rest (scale + normalise + crops) ----
  const mp4 = input('landscape_320x240_10fps_5.3s.mp4');
  const vidDir = mkdtempSync(join(tmpdir(), 'ibllm-bench-video-'));
  try {
    const mp4Path = join(vidDir, 'landscape.mp4');
    writeFileSync(mp4Path, mp4);
    const sample = await preprocessVideo(mp4Path);
    const frames = [...new Set(sample.clips.flatMap((c) => c.frameIndices))].sort((x, y) => x - y);
    const limit = 3840 * 2160;
    const inProcess = nativeVideo(mediaNative());
    const decodeStage = inProcess !== undefined ? 'libav in process' : 'ffmpeg CLI';
    st.video_decode_per_s = await rate(async () => {
      if (inProcess !== undefined) {
        const { stream } = await probeVideoPacketsInProcess(inProcess, mp4Path, limit, 36000);
        await decodeChosenFramesInProcess(inProcess, mp4Path, {
          frameIndices: frames,
          width: stream.width,
          height: stream.height,
          pixelFormat: stream.pixelFormat,
          maxPixels: limit,
          headerDescribesStream: true,
        });
        return;
      }
      const info = await probeVideo(mp4Path, limit);
      await listFramePts(mp4Path, limit, 36000);
      await decodeFramesRgb(mp4Path, {
        frameIndices: frames,
        width: info.width,
        height: info.height,
        pixelFormat: info.pixelFormat,
        maxPixels: limit,
      });
    });
    const fromPath = await rate(() => preprocessVideo(mp4Path));
    // A difference of two noisy timings: null when the noise exceeds it.
    const transformS = 1 / fromPath - 1 / st.video_decode_per_s;
    st.video_transform_per_s = transformS > 0 ? 1 / transformS : null;
    out.video_per_s = await rate(() => asWorker({ kind: 'video', bytes: mp4 }));
    say(
      `video 320×240 5.3 s h264: probe+decode (${decodeStage}) ${fmt(st.video_decode_per_s)}/s, scale+normalise+3 crops ≈ ${st.video_transform_per_s === null ? 'n/a (noise)' : `${fmt(st.video_transform_per_s)}/s`} (from a path, total − decode) → end to end from bytes ${fmt(out.video_per_s)} videos/s`,
    );
  } finally {
    rmSync(vidDir, { recursive: true, force: true });
  }

  out.point_issue_today_per_s = POINT_ISSUE_TODAY_PER_S;
  out.ratio_point_vs_issue_today = out.point_per_s / POINT_ISSUE_TODAY_PER_S;
  return out;
}

/** Ours, then the reference right after, on the same CPU; ratios of the two. */
async function measureRound() {
  const out = await measureOurs();
  if (args.reference) {
    const ref = await runReference();
    out.reference = {
      image_per_s: ref.image.per_s,
      audio_files_per_s: ref.audio.per_s,
      video_per_s: ref.video.per_s,
      max_abs_vs_golden: {
        image: ref.image.max_abs_vs_golden,
        audio: ref.audio.max_abs_vs_golden,
        video: ref.video.max_abs_vs_golden,
      },
    };
    out.ratio_image = out.image_per_s / ref.image.per_s;
    out.ratio_audio = out.audio_files_per_s / ref.audio.per_s;
    out.ratio_video = out.video_per_s / ref.video.per_s;
    say(
      `round: reference image ${fmt(ref.image.per_s)}/s, audio ${fmt(ref.audio.per_s)} files/s, video ${fmt(ref.video.per_s)}/s → ours ÷ reference ${out.ratio_image.toFixed(2)}, ${out.ratio_audio.toFixed(2)}, ${out.ratio_video.toFixed(2)}`,
    );
  }
  return out;
}

const median = (xs) => {
  const v = xs.filter((x) => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
};
/** Field by field median of the rounds (each ratio is paired within its round, then the median taken). */
function medianOf(rounds) {
  const first = rounds[0];
  const out = {};
  for (const [key, value] of Object.entries(first)) {
    if (typeof value === 'number' || value === null) out[key] = median(rounds.map((r) => r[key]));
    else if (typeof value === 'object') out[key] = medianOf(rounds.map((r) => r[key]));
    else out[key] = value; // flags and labels (the same every round)
  }
  return out;
}

/** --rounds R times (ours, then the reference): the medians, with the rounds' ratios when R > 1. */
async function measurePerCore() {
  const rounds = [];
  for (let i = 0; i < roundCount; i++) rounds.push(await measureRound());
  const out = medianOf(rounds);
  out.rounds = roundCount;
  if (roundCount > 1 && args.reference) {
    out.round_ratios = rounds.map((r) => [r.ratio_image, r.ratio_audio, r.ratio_video].map((x) => round(x)));
  }
  return out;
}

/** pool-rate.mjs serving windows with a pool of `n` workers (`loaded`: with this script's imports too). */
const poolChild = (n, loaded = false, inputs = 'image') => [
  join(dirname(self), 'pool-rate.mjs'),
  '--serve',
  '--workers',
  String(n),
  '--warmup-seconds',
  args['warmup-seconds'],
  '--golden',
  args.golden,
  ...(loaded ? ['--loaded'] : []),
  '--inputs',
  inputs,
];

/** Runs measurePerCore in a child pinned to --cpu; relays its lines and returns its JSON. */
function perCorePinned() {
  return new Promise((done) => {
    const forwarded = process.argv.slice(2).filter((a) => a !== '--json');
    const child = spawn(
      'taskset',
      ['-c', args.cpu, process.execPath, self, ...forwarded, '--per-core-child', '--no-encoder'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', (e) => fail(`taskset: ${e.message} (pass --no-pin to measure unpinned)`));
    child.on('close', (code) => {
      const lines = out.trim().split('\n');
      const last = lines.pop() ?? '';
      for (const line of lines) say(line);
      if (code !== 0) process.exit(code ?? 1);
      done(JSON.parse(last));
    });
  });
}

function printRatios(r) {
  if (r.reference !== undefined) {
    const ref = r.reference;
    say(
      `reference (PIL+torchvision, torchaudio, PyAV+torch; 1 thread): image ${fmt(ref.image_per_s)}/s, audio ${fmt(ref.audio_files_per_s)} files/s, video ${fmt(ref.video_per_s)}/s`,
    );
    say(
      `ours ÷ reference, side by side on ${r.pinned_cpu === null ? 'an unpinned process' : `CPU ${r.pinned_cpu}`}: image ${r.ratio_image.toFixed(2)} (goal 1.5), audio ${r.ratio_audio.toFixed(2)} (goal 2), video ${r.ratio_video.toFixed(2)} (goal 1)`,
    );
  }
  say(
    `point ÷ the issue's today (${POINT_ISSUE_TODAY_PER_S}/s, another machine, not side by side): ${r.ratio_point_vs_issue_today.toFixed(2)} (goal 3)`,
  );
}

if (args['image-loop-child']) {
  sharp.concurrency(1);
  const jpeg = input('girl.jpg');
  await serveWindows({
    lanes: 1,
    task: () => asWorker({ kind: 'image', bytes: jpeg }),
    warmupMs: warmupSeconds * 1000,
  });
  process.exit(0);
}

/**
 * The machine's own ceiling for the pool's quotient: processes preprocessing images in their own
 * thread (no pool), N of them at once ÷ one alone (each process also has GC and libuv threads,
 * which a lone one runs on the idle cores).
 */
const loopChild = () => [
  self,
  '--image-loop-child',
  '--warmup-seconds',
  args['warmup-seconds'],
  '--golden',
  args.golden,
];

if (args['per-core-child']) {
  const r = await measurePerCore();
  say(JSON.stringify(r));
  process.exit(0);
}

if (args.reference) checkReference();
let result;
if (args['no-pin']) {
  result = { ...(await measurePerCore()), pinned_cpu: null };
} else {
  result = { ...(await perCorePinned()), pinned_cpu: Number(args.cpu) };
}
printRatios(result);
result.cpus = availableParallelism();
result.seconds = seconds;

// ---- worker pool (issue #15): golden images through N workers vs 1, side by side ----
const poolWorkers = Number(args.workers);
if (!Number.isSafeInteger(poolWorkers) || poolWorkers < 1)
  fail(`--workers must be a positive integer (got ${args.workers})`);
const jpeg = input('girl.jpg');
const poolRounds = Number(args['pool-rounds']);
const poolWindows = Number(args['pool-windows']);
const windowMs = Number(args['window-ms']);
if (!Number.isSafeInteger(poolRounds) || poolRounds < 1)
  fail(`--pool-rounds must be a positive integer (got ${args['pool-rounds']})`);
if (!Number.isSafeInteger(poolWindows) || poolWindows < 1)
  fail(`--pool-windows must be a positive integer (got ${args['pool-windows']})`);
if (!(windowMs >= 20)) fail(`--window-ms must be at least 20 (got ${args['window-ms']})`);
/**
 * 1 (`one`) against N (`many`), as interleaved windows (windows.mjs): --pool-rounds rounds of
 * --pool-windows windows a side, each round's quotient from its own windows, the median reported.
 */
async function interleaved(one, many, ms = windowMs) {
  const q = await interleavedRates({
    one,
    many,
    rounds: poolRounds,
    windowsPerRound: poolWindows,
    windowMs: ms,
    fail,
  });
  return { ...q, ratio: median(q.ratios), ratios: q.ratios.map((x) => round(x)) };
}
const roundsText = (q) =>
  `median of ${poolRounds} rounds of ${poolWindows} interleaved windows a side ${q.ratio.toFixed(2)}× [${q.ratios.join(', ')}]`;
const pool = await interleaved([poolChild(1)], [poolChild(poolWorkers)]);
result.workers = poolWorkers;
result.pool_rounds = poolRounds;
result.pool_windows_per_round = poolWindows;
result.pool_window_ms = windowMs;
result.pool_warmup_s = warmupSeconds;
result.pool_1_worker_images_per_s = pool.one;
result.pool_n_workers_images_per_s = pool.many;
result.workers_ratio = pool.ratio;
result.workers_ratios = pool.ratios;
say(
  `pool image: 1 worker ${fmt(pool.one)}/s, ${poolWorkers} worker${poolWorkers === 1 ? '' : 's'} ${fmt(pool.many)}/s (means); ${roundsText(pool)} (${availableParallelism()} CPUs)`,
);
if (poolWorkers > 1) {
  // The same pool in a process that also holds this script's imports (as a service holds its
  // framework): there the tensors' external memory sets off major GCs on the event loop.
  const loaded = await interleaved([poolChild(1, true)], [poolChild(poolWorkers, true)]);
  result.workers_ratio_loaded_process = loaded.ratio;
  result.workers_ratios_loaded_process = loaded.ratios;
  say(
    `pool image in a process that also loads the model builder, onnxruntime and sharp: 1 worker ${fmt(loaded.one)}/s, ${poolWorkers} workers ${fmt(loaded.many)}/s; ${roundsText(loaded)}`,
  );
  // Every golden input with CPU work in turn (an image ~0.5 ms per worker, the WAV ~10, the cloud
  // ~11, the video ~30): the serving thread's fixed cost per input weighs less than on images alone.
  // Windows 4× as long: a video takes ~30 ms a worker, and a window should hold many of each.
  const mix = 'image,audio,point,video';
  const all = await interleaved(
    [poolChild(1, false, mix)],
    [poolChild(poolWorkers, false, mix)],
    4 * windowMs,
  );
  result.workers_ratio_all_inputs = all.ratio;
  result.workers_ratios_all_inputs = all.ratios;
  say(
    `pool, the golden image, WAV, cloud and video in turn: 1 worker ${fmt(all.one)}/s, ${poolWorkers} workers ${fmt(all.many)}/s; ${roundsText(all)}`,
  );
  const procs = await interleaved(
    [loopChild()],
    Array.from({ length: poolWorkers }, () => loopChild()),
  );
  result.processes_1_images_per_s = procs.one;
  result.processes_n_images_per_s = procs.many;
  result.processes_ratio = procs.ratio;
  result.processes_ratios = procs.ratios;
  say(
    `the machine's ceiling: ${poolWorkers} separate processes ${fmt(procs.many)}/s ÷ 1 process ${fmt(procs.one)}/s; ${roundsText(procs)}; the pool reaches ${((pool.ratio / procs.ratio) * 100).toFixed(0)}% of it`,
  );
}

// ---- the event loop while the pool preprocesses heavy inputs (issue #15) ----
/** monitorEventLoopDelay's sampling interval; subtracted from what it records (see the header). */
const LOOP_RESOLUTION_MS = 5;
const LOOP_REQUESTS = 20;

/** One GET on a fresh connection; resolves with the milliseconds it took. */
function probeMs(url) {
  const start = performance.now();
  return new Promise((resolvePromise, reject) => {
    get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolvePromise(performance.now() - start));
    }).on('error', reject);
  });
}

async function loopUnderLoad(workers) {
  const photo = await sharp({
    create: {
      width: 4000,
      height: 3000,
      channels: 3,
      background: '#808080',
      noise: { type: 'gaussian', mean: 128, sigma: 40 },
    },
  })
    .jpeg({ quality: 90 })
    .toBuffer();
  const work = mkdtempSync(join(tmpdir(), 'ibllm-bench-loop-'));
  const flacPath = join(work, 'ten-minutes.flac');
  try {
    execFileSync('ffmpeg', [
      ...['-v', 'error', '-nostdin', '-y', '-f', 'lavfi'],
      ...['-i', 'sine=frequency=440:sample_rate=22050:duration=600', '-c:a', 'flac', flacPath],
    ]);
  } catch (error) {
    rmSync(work, { recursive: true, force: true });
    fail(`--loop needs ffmpeg on PATH to make its FLAC: ${error.message}`);
  }
  const flac = readFileSync(flacPath);
  rmSync(work, { recursive: true, force: true });
  const points = new Float32Array(200_000 * 3);
  for (let i = 0; i < points.length; i++) {
    const x = Math.sin(i * 12.9898) * 43758.5453;
    points[i] = x - Math.floor(x);
  }
  const cloud = encodeNpy(float32Tensor(points, [200_000, 3]));
  // Each task's bytes move to its worker (transferred), so every task gets its own copy.
  const kinds = [
    () => ({ kind: 'image', bytes: Uint8Array.from(photo) }),
    () => ({ kind: 'audio', bytes: Uint8Array.from(flac) }),
    () => ({ kind: 'point', bytes: Uint8Array.from(cloud), fileName: 'scan.npy', grouping: GROUPING }),
  ];
  const pool = new PreprocessPool({ workers, maxQueue: 64 });
  const server = createServer((_req, res) => res.end('ok'));
  await new Promise((resolvePromise) => server.listen(0, '127.0.0.1', resolvePromise));
  const url = `http://127.0.0.1:${server.address().port}/healthz`;
  try {
    // The workers start (and load their modules) before the clock runs.
    await Promise.all(
      Array.from({ length: workers }, () => pool.run({ kind: 'image', bytes: Uint8Array.from(jpeg) })),
    );
    // A kubelet has probed since the pod started: the first request through this process's HTTP
    // client and server (cold code, ~80 ms here whatever the load) is taken before the clock runs.
    const coldProbeMs = await probeMs(url);
    const tasks = Array.from({ length: LOOP_REQUESTS }, (_, i) => kinds[i % kinds.length]());
    const delay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    const healthz = [];
    let done = false;
    const poller = (async () => {
      while (!done) {
        healthz.push(await probeMs(url));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // Garbage collection on this thread while the burst runs: what of the delay is GC pauses.
    const gcPauses = [];
    const gcObserver = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) gcPauses.push(entry.duration);
    });
    gcObserver.observe({ entryTypes: ['gc'] });
    delay.enable();
    // The histogram starts with its first timer tick (the interval before it is not recorded), so
    // the submission of the burst below, which runs before the loop turns, must come after a tick.
    await new Promise((r) => setTimeout(r, 2 * LOOP_RESOLUTION_MS));
    const start = performance.now();
    await Promise.all(tasks.map((t) => pool.run(t)));
    // A block that ends with the last task is recorded when the timer fires next.
    await new Promise((r) => setTimeout(r, 2 * LOOP_RESOLUTION_MS));
    delay.disable();
    gcObserver.disconnect();
    const seconds = (performance.now() - start) / 1000;
    done = true;
    await poller;
    const lateMs = (ns) => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS);
    return {
      workers,
      requests: LOOP_REQUESTS,
      seconds,
      delay_p99_ms: lateMs(delay.percentile(99)),
      delay_max_ms: lateMs(delay.max),
      healthz_max_ms: Math.max(...healthz),
      healthz_answers: healthz.length,
      healthz_cold_ms: coldProbeMs,
      gc_pauses: gcPauses.length,
      gc_max_ms: Math.max(0, ...gcPauses),
      gc_total_ms: gcPauses.reduce((a, b) => a + b, 0),
    };
  } finally {
    await pool.close();
    await new Promise((resolvePromise) => server.close(resolvePromise));
  }
}

if (!args['no-loop']) {
  const loop = await loopUnderLoad(poolWorkers);
  result.loop = loop;
  say(
    `event loop while ${loop.workers} workers preprocess ${loop.requests} heavy inputs (12 MP JPEG, 10-min FLAC, 200 k points; ${loop.seconds.toFixed(1)} s): delay p99 ${loop.delay_p99_ms.toFixed(1)} ms, max ${loop.delay_max_ms.toFixed(1)} ms; /healthz slowest ${loop.healthz_max_ms.toFixed(1)} ms of ${loop.healthz_answers} (the process's first, cold, before the load: ${loop.healthz_cold_ms.toFixed(1)} ms); GC on this thread: ${loop.gc_pauses} pauses, longest ${loop.gc_max_ms.toFixed(1)} ms, ${loop.gc_total_ms.toFixed(0)} ms in all`,
  );
}

// ---- encoder batch 1 vs batch 8 ----
if (!args['no-encoder']) {
  const config = defaultImageBindConfig();
  const ib = {
    ...config.imagebind,
    vision_embed_dim: Number(args['vision-dim']),
    vision_num_blocks: Number(args['vision-blocks']),
    vision_num_heads: Number(args['vision-heads']),
  };
  const cfg = { ...config, imagebind: ib };
  let seed = 7;
  const entries = new Map();
  for (const [name, shape] of encoderKeys(cfg, 'vision')) {
    const n = shape.reduce((a, b) => a * b, 1);
    entries.set(name, {
      name,
      dtype: 'float32',
      shape,
      byteLength: n * 4,
      async read() {
        const data = new Float32Array(n);
        const scale = 1 / Math.sqrt(shape.at(-1) ?? 1);
        for (let i = 0; i < n; i++) {
          seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
          data[i] = name.includes('norm') && name.endsWith('weight') ? 1 : ((seed / 2 ** 32) * 2 - 1) * scale;
        }
        return { dtype: 'float32', shape, data: new Uint8Array(data.buffer) };
      },
    });
  }
  const work = mkdtempSync(join(tmpdir(), 'ibllm-bench-pre-'));
  try {
    const graph = await buildVisionGraph(new WeightStore(entries), cfg, { input: 'image' });
    const path = join(work, 'vision.onnx');
    writeFileSync(
      path,
      serializeModel(graph, { opsets: { '': 17, 'com.microsoft': 1 }, producerVersion: 'bench' }),
    );
    const session = await createOrtSession(path);
    const image = preprocessRgbImage(await decodeImageRgb(jpeg)).tensor;
    const batch = (b) => {
      const data = new Float32Array(b * image.length);
      for (let i = 0; i < b; i++) data.set(image, i * image.length);
      return { image: hostTensor('float32', [b, 3, 224, 224], data) };
    };
    const one = batch(1);
    const eight = batch(8);
    const r1 = await rate(() => session.run(one));
    const r8 = await rate(() => session.run(eight));
    result.encoder = {
      vision_dim: ib.vision_embed_dim,
      vision_blocks: ib.vision_num_blocks,
      batch1_images_per_s: r1,
      batch8_images_per_s: 8 * r8,
      batch8_over_batch1: (8 * r8) / r1,
    };
    say(
      `vision encoder (width ${ib.vision_embed_dim}, ${ib.vision_num_blocks} blocks, 257 tokens): batch 1 ${fmt(r1)} images/s, batch 8 ${fmt(8 * r8)} images/s → batch 8 ÷ batch 1 = ${((8 * r8) / r1).toFixed(2)}`,
    );
    await session.release();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (args.json) {
  // Four significant digits: enough for ratios, free of float noise.
  say(
    JSON.stringify(result, (_key, value) =>
      typeof value === 'number' && !Number.isInteger(value) ? round(value) : value,
    ),
  );
}
