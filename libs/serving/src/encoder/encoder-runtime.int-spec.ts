// Medium: the dynamically batched encoders on the real golden tiny-a models (ONNX Runtime, CPU).
// Many concurrent requests share session calls; every embedding must equal what the same encoders
// give each input alone (a second EncoderRuntime whose batches hold one row: one image, or one
// clip of a video or audio file), and the golden inputs must give the official embeddings.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import {
  createOrtSession,
  type BatchEvent,
  type InferenceSessionPort,
  type InputModality,
} from '@imagebind-llm/inference';
import {
  cosineSimilarity,
  goldenModelRepository,
  goldenPath,
  l2Norm,
  relativeError,
} from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EncoderRuntime, type EncodedItem } from './encoder-runtime';
import { patternPng, testPatternMp4, toneWav } from './testing/media-fixtures';

// Batched rows go through the same kernels as rows alone; what may differ is float32 summation
// order (GEMM blocking, the clip mean taken outside the graph). That is a few ulps: 1e-6 relative
// is ~8 float32 ulps of the vector norm, far below any real difference between inputs.
const REL_TOLERANCE = 1e-6;
const MIN_COSINE = 0.999999;
// Against the official embedding of the same raw file (golden expected/embed/<input>.npy and the
// head output before the postprocessor, .prenorm.npy): ‖ours − official‖₂/‖official‖₂ and the same
// for the norm, ≤ 1e-5: the bound the raw-input and encoder parity tests hold (RAW_EMBED_REL_TOL in
// tools/cli/test/raw-inputs.int-spec.ts, EMBED_REL_TOL in model-builder's encoder harness).
const GOLDEN_REL_TOLERANCE = 1e-5;
/** Inputs of the test with official embeddings in the golden set: file → expected/embed/<name>. */
const GOLDEN_EMBEDDINGS: Readonly<Record<string, string>> = {
  'girl.jpg': 'girl',
  'girl_bgm.wav': 'girl_bgm',
  'landscape_320x240_10fps_5.3s.mp4': 'landscape',
};
const golden = (file: string): Float32Array => toFloat32(readNpy(goldenPath(file)));

let work: string;
let repo: string;
let runtime: EncoderRuntime;
/** The same encoders one row per session call: what each input gives alone. */
let alone: EncoderRuntime;
const events: { label: string; event: BatchEvent }[] = [];
const aloneEvents: { label: string; event: BatchEvent }[] = [];
/** Holds every session call until opened, so the test decides what is queued together. */
let gateOpen = false;
const gateWaiters: (() => void)[] = [];

function gated(session: InferenceSessionPort): InferenceSessionPort {
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    release: async () => session.release(),
    run: async (feeds, outputs) => {
      if (!gateOpen) await new Promise<void>((resolve) => gateWaiters.push(resolve));
      return session.run(feeds, outputs);
    },
  };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'encoder-runtime-'));
  repo = goldenModelRepository();
  runtime = await EncoderRuntime.load(repo, ['image', 'video', 'audio'], {
    batcher: { maxBatchSize: 32, maxQueueDelayMs: 0, maxQueueSize: 256, maxConcurrentBatches: 1 },
    preprocessConcurrency: 4,
    onBatch: (model, event) => events.push({ label: model.label, event }),
    createSession: async (path, options) => gated(await createOrtSession(path, options)),
  });
  alone = await EncoderRuntime.load(repo, ['image', 'video', 'audio'], {
    batcher: { maxBatchSize: 1, maxQueueDelayMs: 0, maxQueueSize: 256, maxConcurrentBatches: 1 },
    preprocessConcurrency: 1,
    onBatch: (model, event) => aloneEvents.push({ label: model.label, event }),
  });
}, 180_000);

afterAll(async () => {
  await runtime?.close();
  await alone?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('EncoderRuntime on the golden tiny-a models', () => {
  it('batches concurrent image, audio and video requests and matches each input encoded alone', async () => {
    const goldenInput = (modality: InputModality, file: string) => ({
      modality,
      bytes: readFileSync(goldenPath('inputs', file)),
      file,
    });
    const inputs: { modality: InputModality; bytes: Buffer; file?: string }[] = [
      goldenInput('image', 'girl.jpg'),
      ...[1, 2, 3, 4, 5, 6, 7].map((seed) => ({ modality: 'image' as const, bytes: patternPng(seed) })),
      goldenInput('audio', 'girl_bgm.wav'),
      { modality: 'audio', bytes: toneWav(1) },
      { modality: 'audio', bytes: toneWav(2, 5) },
      goldenInput('video', 'landscape_320x240_10fps_5.3s.mp4'),
      { modality: 'video', bytes: testPatternMp4(work) },
    ];
    const run = async (i: (typeof inputs)[number]): Promise<EncodedItem> => {
      const [encoded] = await runtime.encode(i.modality, [{ bytes: i.bytes }]);
      return encoded!;
    };
    // The first request of each modality runs alone and is held; the rest queue behind it and
    // then go as one batch per modality.
    const firsts = (['image', 'audio', 'video'] as const).map((m) =>
      inputs.findIndex((i) => i.modality === m),
    );
    const results: Promise<EncodedItem>[] = [];
    for (const index of firsts) results[index] = run(inputs[index]!);
    await vi.waitFor(() => expect(gateWaiters).toHaveLength(3), { timeout: 60_000, interval: 20 });
    inputs.forEach((input, index) => {
      if (!firsts.includes(index)) results[index] = run(input);
    });
    const queued = (label: string) => runtime.stats().find((s) => s.model.label === label)!.stats.queuedUnits;
    // 7 images, 2 audio files of 3 clips, 1 video of 15 clips.
    await vi.waitFor(
      () => {
        expect(queued('imagebind-vision:image')).toBe(7);
        expect(queued('imagebind-audio:audio')).toBe(6);
        expect(queued('imagebind-vision:video')).toBe(15);
      },
      { timeout: 60_000, interval: 20 },
    );
    gateOpen = true;
    for (const open of gateWaiters.splice(0)) open();
    const encoded = await Promise.all(results);

    const batches = (label: string) => events.filter((e) => e.label === label).map((e) => e.event);
    expect(batches('imagebind-vision:image').map((b) => b.units)).toEqual([1, 7]);
    expect(batches('imagebind-audio:audio').map((b) => b.units)).toEqual([3, 6]);
    expect(batches('imagebind-vision:video').map((b) => b.units)).toEqual([15, 15]);
    expect(events.every((e) => e.event.error === undefined)).toBe(true);

    let worst = 0;
    for (const [index, input] of inputs.entries()) {
      // one request at a time, each of its rows in a session call of its own
      const before = aloneEvents.length;
      const [reference] = await alone.encode(input.modality, [{ bytes: input.bytes }]);
      const rows = aloneEvents.slice(before).map((e) => e.event.units);
      expect(rows.length, `${input.modality} #${index} reference calls`).toBeGreaterThan(0);
      expect(rows.every((units) => units === 1)).toBe(true);
      const mine = encoded[index]!;
      const what = `${input.modality} #${index}`;
      expect(mine.embedding.length, what).toBe(1024);
      const error = relativeError(mine.embedding, reference!.embedding);
      worst = Math.max(worst, error);
      expect(error, what).toBeLessThanOrEqual(REL_TOLERANCE);
      expect(cosineSimilarity(mine.embedding, reference!.embedding), what).toBeGreaterThanOrEqual(MIN_COSINE);
      expect(mine.preprocessed!.shape, what).toEqual(reference!.preprocessed!.shape);
      if (input.file === undefined) continue;
      // the golden inputs: the official embedding and head output of the same file
      const name = GOLDEN_EMBEDDINGS[input.file]!;
      for (const [ours, file] of [
        [mine.embedding, `expected/embed/${name}.npy`],
        [mine.unnormalized, `expected/embed/${name}.prenorm.npy`],
      ] as const) {
        const want = golden(file);
        const official = relativeError(ours, want);
        const norm = Math.abs(l2Norm(ours) - l2Norm(want)) / l2Norm(want);
        console.log(
          `${what} (${input.file}) vs ${file}: rel. error ${official.toExponential(2)}, norm ${norm.toExponential(2)}`,
        );
        expect(official, `${what} vs ${file}`).toBeLessThanOrEqual(GOLDEN_REL_TOLERANCE);
        expect(norm, `${what} norm vs ${file}`).toBeLessThanOrEqual(GOLDEN_REL_TOLERANCE);
      }
    }
    console.log(`batched vs alone: max rel. error ${worst.toExponential(2)}`);
    // every golden input was checked against the official numbers
    expect(inputs.filter((i) => i.file !== undefined).map((i) => GOLDEN_EMBEDDINGS[i.file!])).toEqual([
      'girl',
      'girl_bgm',
      'landscape',
    ]);
    // Different inputs gave different embeddings (so a mix-up between requests would have shown).
    expect(cosineSimilarity(encoded[0]!.embedding, encoded[1]!.embedding)).toBeLessThan(0.999);
    expect(cosineSimilarity(encoded[8]!.embedding, encoded[9]!.embedding)).toBeLessThan(0.999);
    expect(cosineSimilarity(encoded[11]!.embedding, encoded[12]!.embedding)).toBeLessThan(0.999);
  }, 180_000);

  it('gives back the preprocessed tensor, and sending it back gives the same embedding', async () => {
    const bytes = readFileSync(goldenPath('inputs', 'girl_bgm.wav'));
    const [raw] = await runtime.encode('audio', [{ bytes }]);
    const [again] = await runtime.encode('audio', [{ preprocessed: raw!.preprocessed! }]);
    expect(raw!.preprocessed!.shape).toEqual([3, 1, 128, 204]);
    expect(Array.from(again!.embedding)).toEqual(Array.from(raw!.embedding));
    // The unnormalised head output is the clip mean before the postprocessor: not unit length.
    const norm = Math.hypot(...raw!.unnormalized);
    expect(Math.abs(norm - 1)).toBeGreaterThan(1e-3);
  }, 60_000);
});
