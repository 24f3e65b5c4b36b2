#!/usr/bin/env node
// bench/preprocess — preprocessing throughput per stage on the golden example inputs, and encoder
// throughput at batch 1 vs batch 8 on one session.
//
//   npm run build && node bench/preprocess/run.mjs [--seconds 2] [--workers N] [--vision-dim 384] [--vision-blocks 4]
//
// Everything is measured in this one run; the encoder ratio compares two timings taken side by
// side on the same session (a synthetic ImageBind vision tower: random weights, real shapes
// apart from width and depth).
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import {
  decodeImageRgb,
  resizeAndCenterCrop,
  toNormalizedChw,
  decodeWav,
  preprocessWaveform,
  preprocessVideo,
  probeVideo,
  listFramePts,
  decodeFramesRgb,
  tokenizeClipText,
  parsePointCloud,
  groupPointCloud,
  PreprocessPool,
} from '@imagebind-llm/preprocess';
import {
  buildVisionGraph,
  defaultImageBindConfig,
  encoderKeys,
  serializeModel,
  WeightStore,
} from '@imagebind-llm/model-builder';
import { createOrtSession, hostTensor } from '@imagebind-llm/inference';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    workers: { type: 'string', default: String(availableParallelism()) },
    'vision-dim': { type: 'string', default: '384' },
    'vision-blocks': { type: 'string', default: '4' },
    'vision-heads': { type: 'string', default: '6' },
    golden: { type: 'string', default: resolve(process.cwd(), '..', 'shared', 'golden', 'tiny-a') },
  },
});
const budgetMs = Number(args.seconds) * 1000;
const input = (name) => readFileSync(join(args.golden, 'inputs', name));
const say = (line) => process.stdout.write(`${line}\n`);

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

// ---- image ----
const jpeg = input('girl.jpg');
const decoded = await decodeImageRgb(jpeg);
const cropped = resizeAndCenterCrop(decoded);
const imgDecode = await rate(() => decodeImageRgb(jpeg));
const imgResize = await rate(() => resizeAndCenterCrop(decoded));
const imgNorm = await rate(() => toNormalizedChw(cropped));
const imgTotal = 1 / (1 / imgDecode + 1 / imgResize + 1 / imgNorm);
say(
  `image ${decoded.width}×${decoded.height} jpeg: decode ${fmt(imgDecode)}/s, resize+crop ${fmt(imgResize)}/s, normalise ${fmt(imgNorm)}/s → ${fmt(imgTotal)} images/s`,
);

// ---- audio (3 clips per file) ----
const wav = input('girl_bgm.wav');
const wave = decodeWav(wav);
const audDecode = await rate(() => decodeWav(wav));
const audFbank = await rate(() => preprocessWaveform(wave));
const audTotal = 1 / (1 / audDecode + 1 / audFbank);
say(
  `audio ${(wav.length / 1e6).toFixed(1)} MB wav: decode ${fmt(audDecode)}/s, resample+fbank+normalise ${fmt(audFbank)}/s → ${fmt(audTotal)} files/s = ${fmt(3 * audTotal)} clips/s`,
);

// ---- text ----
const txt = await rate(() => tokenizeClipText('A dog playing in the snow next to a red car.'));
say(`text: ${fmt(txt)} prompts/s (CLIP BPE, 77 tokens)`);

// ---- point cloud ----
const pt = input('airplane.pt');
const cloud = await parsePointCloud(pt, 'airplane.pt');
const ptLoad = await rate(() => parsePointCloud(pt, 'airplane.pt'));
// The official checkpoint's grouping (Point-BERT yaml: 512 groups of 32, MODEL_SPEC §3.7).
const ptGroup = await rate(() => groupPointCloud(cloud, { numGroup: 512, groupSize: 32 }));
say(
  `point ${cloud.count} points: load ${fmt(ptLoad)}/s, FPS + kNN grouping ${fmt(ptGroup)}/s → ${fmt(1 / (1 / ptLoad + 1 / ptGroup))} clouds/s`,
);
// ---- worker pool (issue #15): golden images through N workers vs 1, side by side ----
/** Images per second through a PreprocessPool of `n` workers kept busy (4 tasks per worker in flight). */
async function poolRate(n) {
  const pool = new PreprocessPool({ workers: n, maxQueue: 1024 });
  const task = () => pool.run({ kind: 'image', bytes: jpeg });
  try {
    await Promise.all(Array.from({ length: n }, task));
    let done = 0;
    const start = performance.now();
    while (performance.now() - start < budgetMs) {
      await Promise.all(Array.from({ length: 4 * n }, task));
      done += 4 * n;
    }
    return done / ((performance.now() - start) / 1000);
  } finally {
    await pool.close();
  }
}
const poolWorkers = Number(args.workers);
const pool1 = await poolRate(1);
const poolN = poolWorkers === 1 ? pool1 : await poolRate(poolWorkers);
say(
  `pool image: 1 worker ${fmt(pool1)}/s, ${poolWorkers} workers ${fmt(poolN)}/s → ${(poolN / pool1).toFixed(2)}× (${availableParallelism()} CPUs)`,
);

// ---- video: ffmpeg stages (probe + frame list + decode of the 10 sampled frames) vs the rest ----
const mp4 = input('landscape_320x240_10fps_5.3s.mp4');
const vidDir = mkdtempSync(join(tmpdir(), 'ibllm-bench-video-'));
try {
  const mp4Path = join(vidDir, 'landscape.mp4');
  writeFileSync(mp4Path, mp4);
  const sample = await preprocessVideo(mp4Path);
  const frames = [...new Set(sample.clips.flatMap((c) => c.frameIndices))].sort((x, y) => x - y);
  const limit = 3840 * 2160;
  const vidDecode = await rate(async () => {
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
  const vidTotal = await rate(() => preprocessVideo(mp4Path));
  const vidTransform = 1 / Math.max(1e-9, 1 / vidTotal - 1 / vidDecode);
  say(
    `video 320×240 5.3 s h264: ffmpeg probe+decode ${fmt(vidDecode)}/s, scale+normalise+3 crops ≈ ${fmt(vidTransform)}/s (total − decode) → ${fmt(vidTotal)} videos/s`,
  );
} finally {
  rmSync(vidDir, { recursive: true, force: true });
}

// ---- encoder batch 1 vs batch 8 ----
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
  const image = toNormalizedChw(cropped);
  const batch = (b) => {
    const data = new Float32Array(b * image.length);
    for (let i = 0; i < b; i++) data.set(image, i * image.length);
    return { image: hostTensor('float32', [b, 3, 224, 224], data) };
  };
  const one = batch(1);
  const eight = batch(8);
  const r1 = await rate(() => session.run(one));
  const r8 = await rate(() => session.run(eight));
  say(
    `vision encoder (width ${ib.vision_embed_dim}, ${ib.vision_num_blocks} blocks, 257 tokens): batch 1 ${fmt(r1)} images/s, batch 8 ${fmt(8 * r8)} images/s → batch 8 ÷ batch 1 = ${((8 * r8) / r1).toFixed(2)}`,
  );
  await session.release();
} finally {
  rmSync(work, { recursive: true, force: true });
}
