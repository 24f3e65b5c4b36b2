// Medium: the dynamically batched encoders on the real golden tiny-a models (ONNX Runtime, CPU).
// Many concurrent requests share session calls; every embedding must equal what the one-at-a-time
// EncoderPipeline gives for the same input.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createOrtSession,
  EncoderPipeline,
  type BatchEvent,
  type InferenceSessionPort,
  type InputModality,
} from '@imagebind-llm/inference';
import { cosineSimilarity, goldenModelRepository, goldenPath, relativeError } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EncoderRuntime, type EncodedItem } from './encoder-runtime';
import { patternPng, testPatternMp4, toneWav } from './testing/media-fixtures';

// Batched rows go through the same kernels as rows alone; what may differ is float32 summation
// order (GEMM blocking, the clip mean taken outside the graph). That is a few ulps: 1e-6 relative
// is ~8 float32 ulps of the vector norm, far below any real difference between inputs.
const REL_TOLERANCE = 1e-6;
const MIN_COSINE = 0.999999;

let work: string;
let repo: string;
let runtime: EncoderRuntime;
let pipeline: EncoderPipeline;
const events: { label: string; event: BatchEvent }[] = [];
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
  pipeline = new EncoderPipeline(repo);
}, 180_000);

afterAll(async () => {
  await runtime?.close();
  await pipeline?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('EncoderRuntime on the golden tiny-a models', () => {
  it('batches concurrent image, audio and video requests and matches the one-at-a-time pipeline', async () => {
    const inputs: { modality: InputModality; bytes: Buffer }[] = [
      { modality: 'image', bytes: readFileSync(goldenPath('inputs', 'girl.jpg')) },
      ...[1, 2, 3, 4, 5, 6, 7].map((seed) => ({ modality: 'image' as const, bytes: patternPng(seed) })),
      { modality: 'audio', bytes: readFileSync(goldenPath('inputs', 'girl_bgm.wav')) },
      { modality: 'audio', bytes: toneWav(1) },
      { modality: 'audio', bytes: toneWav(2, 5) },
      { modality: 'video', bytes: readFileSync(goldenPath('inputs', 'landscape_320x240_10fps_5.3s.mp4')) },
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

    for (const [index, input] of inputs.entries()) {
      const reference = await pipeline.encode({ modality: input.modality, weight: 1, bytes: input.bytes });
      const mine = encoded[index]!;
      const what = `${input.modality} #${index}`;
      expect(mine.embedding.length, what).toBe(1024);
      expect(relativeError(mine.embedding, reference.embedding), what).toBeLessThanOrEqual(REL_TOLERANCE);
      expect(cosineSimilarity(mine.embedding, reference.embedding), what).toBeGreaterThanOrEqual(MIN_COSINE);
      expect(mine.preprocessed.shape, what).toEqual(reference.preprocessed.shape);
    }
    // Different inputs gave different embeddings (so a mix-up between requests would have shown).
    expect(cosineSimilarity(encoded[0]!.embedding, encoded[1]!.embedding)).toBeLessThan(0.999);
    expect(cosineSimilarity(encoded[8]!.embedding, encoded[9]!.embedding)).toBeLessThan(0.999);
    expect(cosineSimilarity(encoded[11]!.embedding, encoded[12]!.embedding)).toBeLessThan(0.999);
  }, 180_000);

  it('gives back the preprocessed tensor, and sending it back gives the same embedding', async () => {
    const bytes = readFileSync(goldenPath('inputs', 'girl_bgm.wav'));
    const [raw] = await runtime.encode('audio', [{ bytes }]);
    const [again] = await runtime.encode('audio', [{ preprocessed: raw!.preprocessed }]);
    expect(raw!.preprocessed.shape).toEqual([3, 1, 128, 204]);
    expect(Array.from(again!.embedding)).toEqual(Array.from(raw!.embedding));
    // The unnormalised head output is the clip mean before the postprocessor: not unit length.
    const norm = Math.hypot(...raw!.unnormalized);
    expect(Math.abs(norm - 1)).toBeGreaterThan(1e-3);
  }, 60_000);
});
