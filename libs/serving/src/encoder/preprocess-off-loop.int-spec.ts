// Medium (worker threads, ffmpeg, loopback HTTP): issue #15 item 1. While concurrent requests
// carry heavy raw inputs, the CPU work of preprocessing runs on the PreprocessPool's threads and
// the serving event loop stays free: its delay stays low and a /healthz on the same loop answers.
// The same inputs preprocessed in thread (the old path) block the loop for far longer than the
// bound, so the bound tells the two apart. The workers run the build (`npm test` builds first).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, get, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { encodeNpy, float32Tensor } from '@imagebind-llm/checkpoint';
import {
  InThreadPreprocessor,
  setMediaNativeEnabled,
  type InputModality,
  type PreprocessRunner,
  type TensorSpec,
} from '@imagebind-llm/inference';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EncoderRuntime, type EncoderItem } from './encoder-runtime';
import { fakeEncoderModel, idleSession } from './testing/fake-row-session';

// p99 of the event-loop delay while the requests run: how late the sampling timer fires, i.e.
// monitorEventLoopDelay's recorded interval less its resolution (the histogram records the whole
// interval, so an idle loop reads ≈ the resolution; OpenTelemetry's runtime-node subtracts it too).
// A loop that only routes messages to workers and back measured 5–10 ms on a quiet 2-core box and
// 13–42 ms at load average 9–14 (the pool's threads, ffmpeg and other test files all want the
// cores; the workers run at nice 10 so the loop is scheduled first). The in-thread path blocks
// 0.8–1.1 s per 12 MP JPEG or 200 k-point cloud, so 100 ms separates the two with room for a
// noisier neighbour; bench/preprocess measures the figure on a quiet machine.
const LOOP_P99_BOUND_MS = 100;
// Slowest /healthz answer (a fresh connection per probe, as a kubelet makes them) seen by a poller
// on the same loop, client and server both on it: measured 410–815 ms under that load, from
// scheduling stalls rather than work on the loop. 1 s is a Kubernetes probe's default timeout: the
// probe must not fail while the pod preprocesses.
const HEALTHZ_BOUND_MS = 1000;
const CONCURRENT_REQUESTS = 20;
/** The loop-delay histogram's sampling interval. */
const RESOLUTION_MS = 5;

/** Graph inputs as the ImageBind encoders declare them (the point graph with 512 × 32 groups). */
const GRAPHS: Readonly<Record<'image' | 'audio' | 'point', TensorSpec[]>> = {
  image: [{ name: 'image', dtype: 'float32', dims: ['batch', 3, 224, 224] }],
  audio: [{ name: 'audio', dtype: 'float32', dims: ['batch', 'clips', 1, 128, 204] }],
  point: [
    { name: 'neighborhood', dtype: 'float32', dims: ['batch', 512, 32, 3] },
    { name: 'center', dtype: 'float32', dims: ['batch', 512, 3] },
  ],
};

function runtime(preprocessing?: PreprocessRunner): EncoderRuntime {
  return new EncoderRuntime(
    (['image', 'audio', 'point'] as const).map((m) => fakeEncoderModel(m, GRAPHS[m], idleSession())),
    {
      batcher: { maxBatchSize: 16, maxQueueDelayMs: 5, maxQueueSize: 256, maxConcurrentBatches: 1 },
      ...(preprocessing === undefined ? {} : { preprocessing }),
    },
  );
}

const dir = mkdtempSync(join(tmpdir(), 'ibllm-offloop-'));
let jpeg: Buffer;
let flac: Buffer;
let cloud: Uint8Array;
let health: Server;
let healthUrl: string;

beforeAll(async () => {
  // 12 MP of noise (so the JPEG is a real photo's size to decode, not a flat block).
  jpeg = await sharp({
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
  const flacPath = join(dir, 'ten-minutes.flac');
  execFileSync('ffmpeg', [
    ...['-v', 'error', '-nostdin', '-y', '-f', 'lavfi'],
    ...['-i', 'sine=frequency=440:sample_rate=22050:duration=600', '-c:a', 'flac', flacPath],
  ]);
  flac = readFileSync(flacPath);
  const points = new Float32Array(200_000 * 3);
  for (let i = 0; i < points.length; i++)
    points[i] = Math.sin(i * 12.9898) * 43758.5453 - Math.floor(Math.sin(i * 12.9898) * 43758.5453);
  cloud = encodeNpy(float32Tensor(points, [200_000, 3]));
  health = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => health.listen(0, '127.0.0.1', resolve));
  const address = health.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  healthUrl = `http://127.0.0.1:${address.port}/healthz`;
}, 120_000);

afterAll(async () => {
  await new Promise((resolve) => health?.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

const ITEMS: readonly [InputModality, () => EncoderItem][] = [
  ['image', () => ({ bytes: jpeg, fileName: 'photo.jpg' })],
  ['audio', () => ({ bytes: flac, fileName: 'talk.flac' })],
  ['point', () => ({ bytes: cloud, fileName: 'scan.npy' })],
];

/** One GET /healthz on a fresh connection, as a kubelet probe makes it. */
async function probe(): Promise<string> {
  return new Promise((resolve, reject) => {
    get(healthUrl, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** Runs the requests while sampling the loop delay and polling /healthz every 50 ms. */
async function underLoad(
  rt: EncoderRuntime,
  requests: readonly [InputModality, () => EncoderItem][],
): Promise<{ p99Ms: number; maxMs: number; healthzMs: number[] }> {
  // A kubelet has probed since the pod started: the process's first request through its HTTP
  // client and server (cold code, ~80 ms whatever the load) is not one taken under load.
  await probe();
  const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  const healthzMs: number[] = [];
  let done = false;
  const poller = (async () => {
    while (!done) {
      const start = performance.now();
      expect(await probe()).toBe('ok');
      healthzMs.push(performance.now() - start);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  delay.enable();
  // The histogram starts with its first timer tick (the interval before it is not recorded), so
  // the requests, submitted before the loop turns, must come after a tick or their start is missed.
  await new Promise((resolve) => setTimeout(resolve, 2 * RESOLUTION_MS));
  try {
    const results = await Promise.all(
      requests.map(async ([modality, item]) => rt.encode(modality, [item()])),
    );
    for (const r of results) expect(r[0]!.embedding).toHaveLength(4);
    // The histogram records a block when its timer fires after it: let it fire once more, or a
    // block that ends with the last request would go unrecorded.
    await new Promise((resolve) => setTimeout(resolve, 5 * RESOLUTION_MS));
  } finally {
    delay.disable();
    done = true;
    await poller;
  }
  const lateMs = (ns: number): number => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  return { p99Ms: lateMs(delay.percentile(99)), maxMs: lateMs(delay.max), healthzMs };
}

describe('preprocessing off the event loop', () => {
  it(`keeps the loop free while ${CONCURRENT_REQUESTS} requests carry a 12 MP JPEG, a 10-minute FLAC or a 200 k-point cloud`, async () => {
    const rt = runtime();
    try {
      const requests = Array.from({ length: CONCURRENT_REQUESTS }, (_, i) => ITEMS[i % ITEMS.length]!);
      const pooled = await underLoad(rt, requests);
      console.log(
        `pool: loop delay p99 ${pooled.p99Ms.toFixed(1)} ms, max ${pooled.maxMs.toFixed(1)} ms; ` +
          `/healthz ${pooled.healthzMs.length} answers, slowest ${Math.max(...pooled.healthzMs).toFixed(1)} ms`,
      );
      expect(pooled.p99Ms).toBeLessThanOrEqual(LOOP_P99_BOUND_MS);
      expect(pooled.healthzMs.length).toBeGreaterThan(0);
      expect(Math.max(...pooled.healthzMs)).toBeLessThanOrEqual(HEALTHZ_BOUND_MS);
    } finally {
      await rt.close();
    }
  }, 300_000);

  it('would block it in thread: the bound tells the old path from the pool', async () => {
    // One JPEG and one cloud, one after the other, on the calling thread as before #15, on the
    // portable path (sharp + TypeScript) as then: the control shows the bound separates the two ways.
    setMediaNativeEnabled(false);
    const rt = runtime(new InThreadPreprocessor());
    try {
      const inThread = await underLoad(rt, [ITEMS[0]!, ITEMS[2]!]);
      console.log(
        `in thread: loop delay p99 ${inThread.p99Ms.toFixed(1)} ms, max ${inThread.maxMs.toFixed(1)} ms`,
      );
      expect(inThread.maxMs).toBeGreaterThan(LOOP_P99_BOUND_MS);
    } finally {
      setMediaNativeEnabled(true);
      await rt.close();
    }
  }, 120_000);
});
