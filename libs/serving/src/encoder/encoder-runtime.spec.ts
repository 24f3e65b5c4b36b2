import { encodeNpy, float32Tensor } from '@imagebind-llm/checkpoint';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  encoderFeedsFromPreprocessed,
  hostTensor,
  type ModalityInput,
  type PreprocessedEncoderInput,
  type TensorSpec,
} from '@imagebind-llm/inference';
import { describe, expect, it, vi } from 'vitest';
import { clipMean, EncoderRuntime, type EncoderRuntimeOptions } from './encoder-runtime';
import { fakeEncoderModel, fakeRowSession, type FakeRowSession } from './testing/fake-row-session';

/** Tiny graphs in the real layouts: clips graphs have a symbolic dim 1, as model.json writes it. */
const VIDEO: TensorSpec[] = [{ name: 'video', dtype: 'float32', dims: ['batch', 'clips', 2] }];
const AUDIO: TensorSpec[] = [{ name: 'audio', dtype: 'float32', dims: ['batch', 'clips', 1, 2] }];
const IMAGE: TensorSpec[] = [{ name: 'image', dtype: 'float32', dims: ['batch', 3, 2, 2] }];
const TEXT: TensorSpec[] = [{ name: 'tokens', dtype: 'int64', dims: ['batch', 4] }];

const BATCHER = { maxBatchSize: 16, maxQueueDelayMs: 0, maxQueueSize: 64, maxConcurrentBatches: 1 };

/** A preprocessed clip tensor [clips, ...perClip] whose clip c holds `seed + c` everywhere. */
function clips(seed: number, count: number, perClip: number[]): { data: Float32Array; shape: number[] } {
  const per = perClip.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count * per);
  for (let c = 0; c < count; c++) data.fill(seed + c, c * per, (c + 1) * per);
  return { data, shape: [count, ...perClip] };
}

function runtime(
  models: { modality: 'video' | 'audio' | 'image' | 'text'; spec: TensorSpec[]; session: FakeRowSession }[],
  options: Partial<EncoderRuntimeOptions> = {},
): EncoderRuntime {
  return new EncoderRuntime(
    models.map((m) => fakeEncoderModel(m.modality, m.spec, m.session)),
    { batcher: BATCHER, ...options },
  );
}

describe('EncoderRuntime', () => {
  it('flattens the clips of video and audio requests into one batch each and regroups them per request', async () => {
    const video = fakeRowSession({ gated: true });
    const audio = fakeRowSession({ gated: true });
    const rt = runtime(
      [
        { modality: 'video', spec: VIDEO, session: video },
        { modality: 'audio', spec: AUDIO, session: audio },
      ],
      { batcher: { ...BATCHER, maxBatchSize: 32 } },
    );
    // One request of each runs first; the next ones queue behind it and share one session call.
    const blockers = [
      rt.encode('video', [{ preprocessed: clips(0, 1, [2]) }]),
      rt.encode('audio', [{ preprocessed: clips(0, 1, [1, 2]) }]),
    ];
    await vi.waitFor(() => expect(video.runs.length + audio.runs.length).toBe(2));
    const a = rt.encode('video', [{ preprocessed: clips(10, 3, [2]) }]);
    const b = rt.encode('video', [{ preprocessed: clips(20, 2, [2]) }, { preprocessed: clips(30, 15, [2]) }]);
    const c = rt.encode('audio', [{ preprocessed: clips(40, 3, [1, 2]) }]);
    const d = rt.encode('audio', [{ preprocessed: clips(50, 3, [1, 2]) }]);
    await vi.waitFor(() => expect(rt.stats().map((s) => s.stats.queuedUnits)).toEqual([20, 6]));
    await Promise.all([video.openGate(), audio.openGate()]);
    // 3 + 2 + 15 clips in one call, as batch rows with a clips axis of 1.
    expect(video.runs[1]!.feeds['video']!.dims).toEqual([20, 1, 2]);
    expect(audio.runs[1]!.feeds['audio']!.dims).toEqual([6, 1, 1, 2]);
    await Promise.all([video.openGate(), audio.openGate()]);
    const [[ea], [eb1, eb2], [ec], [ed]] = await Promise.all([a, b, c, d]);
    await Promise.all(blockers);

    // Each embedding is its own clips' mean: the fake's row value is (o + 1)(Σ row + k), Σ row = 2·value.
    const mean = (seed: number, count: number, o: number, k: number) =>
      (o + 1) * (2 * (seed + (count - 1) / 2) + k);
    expect(Array.from(ea!.embedding)).toEqual([0, 1, 2, 3].map((k) => mean(10, 3, 0, k)));
    expect(Array.from(ea!.unnormalized)).toEqual([0, 1, 2, 3].map((k) => mean(10, 3, 1, k)));
    expect(Array.from(eb1!.embedding)).toEqual([0, 1, 2, 3].map((k) => mean(20, 2, 0, k)));
    expect(Array.from(eb2!.embedding)).toEqual([0, 1, 2, 3].map((k) => mean(30, 15, 0, k)));
    expect(Array.from(ec!.embedding)).toEqual([0, 1, 2, 3].map((k) => mean(40, 3, 0, k)));
    expect(Array.from(ed!.embedding)).toEqual([0, 1, 2, 3].map((k) => mean(50, 3, 0, k)));
    expect(eb2!.preprocessed!.shape).toEqual([15, 2]);
  });

  it('gives the same embedding batched as alone', async () => {
    const alone = runtime([{ modality: 'video', spec: VIDEO, session: fakeRowSession() }]);
    const [single] = await alone.encode('video', [{ preprocessed: clips(7, 15, [2]) }]);
    const batched = runtime([{ modality: 'video', spec: VIDEO, session: fakeRowSession() }], {
      batcher: { ...BATCHER, maxBatchSize: 4 },
    });
    // 15 clips with a batch of 4: cut into 4 + 4 + 4 + 3 and joined before the mean.
    const [, cut] = await batched.encode('video', [
      { preprocessed: clips(1, 2, [2]) },
      { preprocessed: clips(7, 15, [2]) },
    ]);
    expect(cut!.embedding).toEqual(single!.embedding);
  });

  it('refuses as too large, not as overloaded, a request whose clips could never fit the queue', async () => {
    const session = fakeRowSession();
    const rt = runtime([{ modality: 'video', spec: VIDEO, session }], {
      batcher: { ...BATCHER, maxBatchSize: 8, maxQueueSize: 16 },
    });
    await expect(
      rt.encode('video', [{ preprocessed: clips(1, 10, [2]) }, { preprocessed: clips(2, 7, [2]) }]),
    ).rejects.toMatchObject({
      code: ErrorCode.PayloadTooLarge,
      message: expect.stringMatching(/needs 17 clips/) as unknown,
    });
    expect(session.runs).toHaveLength(0);
    await expect(rt.encode('video', [{ preprocessed: clips(1, 16, [2]) }])).resolves.toHaveLength(1);
  });

  it('takes the clip mean in float32, clip by clip, as the graph does', () => {
    // In float64 the mean would be 1/3; float32 loses the 1 against 1e8 as ReduceMean does.
    expect(Array.from(clipMean(Float32Array.from([1e8, 1, -1e8]), 3))).toEqual([0]);
    expect(Array.from(clipMean(Float32Array.from([1, 2, 3, 5]), 2))).toEqual([2, 3.5]);
  });

  it('preprocesses raw inputs with file names and text, and refuses what does not fit the graph', async () => {
    const seen: ModalityInput[] = [];
    const preprocess = async (input: ModalityInput): Promise<PreprocessedEncoderInput> => {
      seen.push(input);
      await Promise.resolve();
      const value = input.bytes?.[0] ?? 0;
      const data = new Float32Array(12).fill(value);
      // Byte 9 stands for a repository built for another image size.
      const dims = value === 9 ? [1, 3, 1, 4] : [1, 3, 2, 2];
      return {
        feeds: { image: hostTensor('float32', dims, data) },
        preprocessed: { data, shape: [3, 2, 2] },
      };
    };
    const session = fakeRowSession();
    const rt = runtime([{ modality: 'image', spec: IMAGE, session }], { preprocess });
    const [a, b] = await rt.encode('image', [
      { bytes: Uint8Array.of(1), fileName: 'a.png' },
      { bytes: Uint8Array.of(2) },
    ]);
    expect(seen.map((s) => [s.modality, s.fileName])).toEqual([
      ['image', 'a.png'],
      ['image', undefined],
    ]);
    expect(a!.embedding[0]).toBe(12);
    expect(b!.embedding[0]).toBe(24);
    await expect(
      rt.encode('image', [{ bytes: Uint8Array.of(1) }, { bytes: Uint8Array.of(9) }]),
    ).rejects.toMatchObject({
      code: ErrorCode.FailedPrecondition,
      details: { field: 'inputs[1].content' },
    });
    await expect(
      rt.encode('image', [{ preprocessed: { data: new Float32Array(18), shape: [3, 2, 3] } }]),
    ).rejects.toMatchObject({
      code: ErrorCode.InvalidInput,
      message: expect.stringMatching(
        /^inputs\[0\]: .*takes image as float32 \[3, 2, 2\] per item, got float32 \[3, 2, 3\]/,
      ) as unknown,
      details: { field: 'inputs[0].preprocessed' },
    });
  });

  it('names the failing item and spends nothing on the request once one item fails', async () => {
    const session = fakeRowSession();
    const preprocess = async (input: ModalityInput): Promise<PreprocessedEncoderInput> => {
      await Promise.resolve();
      if (input.bytes?.[0] === 0)
        throw new DomainError(ErrorCode.UnsupportedMedia, 'not an image', { field: 'image' });
      const data = new Float32Array(12);
      return {
        feeds: { image: hostTensor('float32', [1, 3, 2, 2], data) },
        preprocessed: { data, shape: [3, 2, 2] },
      };
    };
    const rt = runtime([{ modality: 'image', spec: IMAGE, session }], { preprocess });
    await expect(
      rt.encode('image', [{ bytes: Uint8Array.of(1) }, { bytes: Uint8Array.of(0) }]),
    ).rejects.toMatchObject({
      code: ErrorCode.UnsupportedMedia,
      message: 'inputs[1]: not an image',
      details: { field: 'inputs[1].content' },
    });
    expect(session.runs).toHaveLength(0);
  });

  it('checks preprocessed token ids and feeds them as int64', async () => {
    const session = fakeRowSession();
    const rt = runtime([{ modality: 'text', spec: TEXT, session }]);
    await expect(
      rt.encode('text', [{ preprocessed: { data: Float32Array.from([1, 2, 1e6, 0]), shape: [4] } }]),
    ).rejects.toMatchObject({
      code: ErrorCode.InvalidInput,
      details: { field: 'inputs[0].preprocessed' },
    });
    const [e] = await rt.encode('text', [
      { preprocessed: { data: Float32Array.from([1, 2, 3, 0]), shape: [4] } },
    ]);
    expect(session.runs[0]!.feeds['tokens']!.data).toEqual(BigInt64Array.from([1n, 2n, 3n, 0n]));
    expect(e!.embedding[0]).toBe(6);
  });

  it('refuses a modality this replica does not encode, naming the ones it does', async () => {
    const rt = runtime([{ modality: 'video', spec: VIDEO, session: fakeRowSession() }]);
    await expect(rt.encode('audio', [{ bytes: Uint8Array.of(1) }])).rejects.toMatchObject({
      code: ErrorCode.InvalidInput,
      message: 'this replica encodes video, not audio',
    });
  });

  it('refuses with OVERLOADED before preprocessing when the queue is full', async () => {
    const session = fakeRowSession({ gated: true });
    let preprocessed = 0;
    const preprocess = async (): Promise<PreprocessedEncoderInput> => {
      preprocessed++;
      await Promise.resolve();
      const data = new Float32Array(12);
      return {
        feeds: { image: hostTensor('float32', [1, 3, 2, 2], data) },
        preprocessed: { data, shape: [3, 2, 2] },
      };
    };
    const rt = runtime([{ modality: 'image', spec: IMAGE, session }], {
      preprocess,
      batcher: { ...BATCHER, maxBatchSize: 1, maxQueueSize: 1 },
    });
    const running = rt.encode('image', [{ bytes: Uint8Array.of(1) }]);
    await vi.waitFor(() => expect(session.runs).toHaveLength(1));
    const queued = rt.encode('image', [{ bytes: Uint8Array.of(1) }]);
    await vi.waitFor(() => expect(rt.stats()[0]!.stats.queuedUnits).toBe(1));
    await expect(rt.encode('image', [{ bytes: Uint8Array.of(1) }])).rejects.toMatchObject({
      code: ErrorCode.Overloaded,
    });
    expect(preprocessed).toBe(2);
    await session.openGate();
    await session.openGate();
    await Promise.all([running, queued]);
  });

  it('bounds preprocessing: past the running and waiting inputs a request is refused with OVERLOADED', async () => {
    const gate: (() => void)[] = [];
    const preprocess = async (): Promise<PreprocessedEncoderInput> => {
      await new Promise<void>((resolve) => gate.push(resolve));
      const data = new Float32Array(12);
      return {
        feeds: { image: hostTensor('float32', [1, 3, 2, 2], data) },
        preprocessed: { data, shape: [3, 2, 2] },
      };
    };
    const rt = runtime([{ modality: 'image', spec: IMAGE, session: fakeRowSession() }], {
      preprocess,
      preprocessConcurrency: 1,
      batcher: { ...BATCHER, maxBatchSize: 2, maxQueueSize: 2 },
    });
    const accepted = [1, 2, 3].map(async () => rt.encode('image', [{ bytes: Uint8Array.of(1) }]));
    await vi.waitFor(() => expect(gate).toHaveLength(1));
    await expect(rt.encode('image', [{ bytes: Uint8Array.of(1) }])).rejects.toMatchObject({
      code: ErrorCode.Overloaded,
      message: expect.stringMatching(/1 inputs are being preprocessed and 2 wait/) as unknown,
    });
    // One at a time: each finished preprocessing lets the next waiting input in.
    for (let i = 0; i < 3; i++) {
      await vi.waitFor(() => expect(gate).toHaveLength(1));
      gate.shift()!();
    }
    expect(await Promise.all(accepted)).toHaveLength(3);
  });

  it('warms up every model with one zero row in its graph layout', async () => {
    const video = fakeRowSession();
    const text = fakeRowSession();
    const rt = runtime([
      { modality: 'video', spec: VIDEO, session: video },
      { modality: 'text', spec: TEXT, session: text },
    ]);
    await rt.warmup();
    expect(video.runs[0]!.feeds['video']).toEqual({
      dtype: 'float32',
      dims: [1, 1, 2],
      data: new Float32Array(2),
    });
    expect(text.runs[0]!.feeds['tokens']).toEqual({
      dtype: 'int64',
      dims: [1, 4],
      data: new BigInt64Array(4),
    });
    // Warm-up is not traffic: it leaves the batcher's counters alone.
    expect(rt.stats().map((s) => s.stats.totals.batches)).toEqual([0, 0]);
  });

  it('drains on close, then releases the sessions and refuses new work', async () => {
    const session = fakeRowSession({ gated: true });
    const rt = runtime([{ modality: 'video', spec: VIDEO, session }]);
    const running = rt.encode('video', [{ preprocessed: clips(1, 2, [2]) }]);
    await vi.waitFor(() => expect(session.runs).toHaveLength(1));
    const closing = rt.close();
    await expect(rt.encode('video', [{ preprocessed: clips(1, 2, [2]) }])).rejects.toMatchObject({
      code: ErrorCode.DependencyUnavailable,
    });
    expect(session.released).toBe(false);
    await session.openGate();
    await closing;
    await expect(running).resolves.toHaveLength(1);
    expect(session.released).toBe(true);
  });
});

describe('EncoderRuntime point grouping', () => {
  // A checkpoint whose Point-BERT config has num_group = 96, group_size = 12: model.json records
  // the graph inputs with those dims, and grouping must follow them (not the official 512 / 32).
  const POINT_96_12: TensorSpec[] = [
    { name: 'neighborhood', dtype: 'float32', dims: ['batch', 96, 12, 3] },
    { name: 'center', dtype: 'float32', dims: ['batch', 96, 3] },
  ];
  const count = 200; // fewer than 512 points: enough for 96 centres of 12
  const points = new Float32Array(count * 3);
  let seed = 7;
  for (let i = 0; i < points.length; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    points[i] = seed / 2147483648 - 0.5;
  }

  it.each(['preprocessed', 'raw .npy bytes'])(
    'groups a %s cloud into the graph’s num_group × group_size',
    async (kind) => {
      const session = fakeRowSession();
      const rt = new EncoderRuntime([fakeEncoderModel('point', POINT_96_12, session)], { batcher: BATCHER });
      const item =
        kind === 'preprocessed'
          ? { preprocessed: { data: points, shape: [count, 3] } }
          : { bytes: encodeNpy(float32Tensor(points, [count, 3])), fileName: 'cloud.npy' };
      const [encoded] = await rt.encode('point', [item]);
      expect(encoded!.preprocessed!.shape).toEqual([count, 3]);
      const feeds = session.runs[0]!.feeds;
      expect(feeds['neighborhood']!.dims).toEqual([1, 96, 12, 3]);
      expect(feeds['center']!.dims).toEqual([1, 96, 3]);
      // FPS starts at point 0 (B10), and every centre is in its own group (at distance 0).
      expect(Array.from((feeds['center']!.data as Float32Array).slice(0, 3))).toEqual(
        Array.from(points.subarray(0, 3)),
      );
      const neighborhood = feeds['neighborhood']!.data as Float32Array;
      for (let g = 0; g < 96; g++) {
        const group = Array.from({ length: 12 }, (_, k) =>
          neighborhood.subarray((g * 12 + k) * 3, (g * 12 + k) * 3 + 3),
        );
        expect(group.some((d) => d.every((v) => v === 0))).toBe(true);
      }
      const direct = encoderFeedsFromPreprocessed(
        'point',
        { data: points, shape: [count, 3] },
        { point: { numGroup: 96, groupSize: 12 } },
      );
      expect(neighborhood).toEqual(direct.feeds['neighborhood']!.data);
    },
  );

  it('refuses a cloud with fewer points than the graph’s num_group, naming that number', async () => {
    const rt = new EncoderRuntime([fakeEncoderModel('point', POINT_96_12, fakeRowSession())], {
      batcher: BATCHER,
    });
    const few = points.slice(0, 90 * 3);
    await expect(
      rt.encode('point', [{ bytes: encodeNpy(float32Tensor(few, [90, 3])), fileName: 'few.npy' }]),
    ).rejects.toMatchObject({
      code: ErrorCode.InvalidInput,
      message: expect.stringMatching(/fewer than the 96/) as unknown,
    });
  });

  it('will not load a point graph whose neighborhood dims are not numeric', () => {
    const symbolic: TensorSpec[] = [{ name: 'neighborhood', dtype: 'float32', dims: ['batch', 'g', 12, 3] }];
    expect(
      () => new EncoderRuntime([fakeEncoderModel('point', symbolic, fakeRowSession())], { batcher: BATCHER }),
    ).toThrow(/num_group, group_size/);
  });
});
