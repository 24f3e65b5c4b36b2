import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { goldenPath } from '@imagebind-llm/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { InThreadPreprocessor, PreprocessPool } from './preprocess-pool';
import type { PreprocessOutput } from './preprocess-task';

// The workers run the package's build (dist/pool/preprocess.worker.js): `npm test` builds first.
const jpeg = readFileSync(goldenPath('inputs', 'girl.jpg'));
const cloud = readFileSync(goldenPath('inputs', 'airplane.pt'));
const grouping = { numGroup: 512, groupSize: 32 };

const pools: PreprocessPool[] = [];
function pool(options: ConstructorParameters<typeof PreprocessPool>[0] = {}): PreprocessPool {
  const p = new PreprocessPool(options);
  pools.push(p);
  return p;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map(async (p) => p.close()));
});

/** Bit for bit (vitest's toEqual walks a 4.5 M-element video tensor for seconds). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

function tensor(output: PreprocessOutput): Float32Array {
  if (output.kind !== 'tensor') throw new Error(`expected a tensor, got ${output.kind}`);
  return output.data;
}

describe('PreprocessPool', () => {
  it('gives the in-thread image tensor bit for bit and leaves the caller its bytes', async () => {
    const bytes = new Uint8Array(jpeg);
    const [pooled, local] = await Promise.all([
      pool({ workers: 1 }).run({ kind: 'image', bytes }),
      new InThreadPreprocessor().run({ kind: 'image', bytes }),
    ]);
    expect(tensor(pooled)).toEqual(tensor(local));
    // The pool moved a copy: the caller's buffer is not detached.
    expect(bytes.byteLength).toBe(jpeg.byteLength);
    expect(bytes[0]).toBe(0xff);
  });

  it('groups a point cloud in the worker exactly as in thread', async () => {
    const task = { kind: 'point', bytes: cloud, fileName: 'airplane.pt', grouping } as const;
    const [pooled, local] = await Promise.all([
      pool({ workers: 1 }).run(task),
      new InThreadPreprocessor().run(task),
    ]);
    if (pooled.kind !== 'point' || local.kind !== 'point') throw new Error('expected point outputs');
    expect(pooled.count).toBe(local.count);
    expect(pooled.groups.centerIndices).toEqual(local.groups.centerIndices);
    expect(pooled.groups.groupIndices).toEqual(local.groups.groupIndices);
    expect(pooled.groups.neighborhoods).toEqual(local.groups.neighborhoods);
  });

  it('keeps a DomainError code and message across the thread boundary', async () => {
    const error: unknown = await pool({ workers: 1 })
      .run({ kind: 'image', bytes: new Uint8Array(64).fill(7) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ code: ErrorCode.UnsupportedMedia, message: /unsupported image format/ });
  });

  it('applies its configured limits in the worker', async () => {
    const error: unknown = await pool({ workers: 1, limits: { maxPoints: 1000 } })
      .run({ kind: 'point', bytes: cloud, fileName: 'airplane.pt', grouping })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: ErrorCode.PayloadTooLarge,
      message: /8192 points exceed the limit of 1000 \(server setting PREPROCESS_MAX_POINTS\)/,
    });
  });

  it('refuses past its queue with OVERLOADED and a retry hint, and runs what it accepted', async () => {
    const p = pool({ workers: 1, maxQueue: 1 });
    const task = { kind: 'image', bytes: jpeg } as const;
    // The first goes to the worker, the second waits, the third finds the queue full.
    const first = p.run(task);
    const second = p.run(task);
    const third: unknown = await p.run(task).catch((e: unknown) => e);
    expect(third).toBeInstanceOf(DomainError);
    const refused = third as DomainError;
    expect(refused.code).toBe(ErrorCode.Overloaded); // RESOURCE_EXHAUSTED on the wire
    expect(refused.details.retryAfterMs).toBeGreaterThanOrEqual(50);
    expect(tensor(await first)).toHaveLength(3 * 224 * 224);
    expect(tensor(await second)).toHaveLength(3 * 224 * 224);
    expect(p.stats()).toMatchObject({ queued: 0, running: 0, workers: 1 });
  });

  it('drops a waiting task when its caller aborts', async () => {
    const p = pool({ workers: 1, maxQueue: 4 });
    const running = p.run({ kind: 'image', bytes: jpeg });
    const abort = new AbortController();
    const waiting = p.run({ kind: 'image', bytes: jpeg }, { signal: abort.signal });
    abort.abort(new Error('client went away'));
    await expect(waiting).rejects.toThrow('client went away');
    expect(p.stats().queued).toBe(0);
    await running;
  });

  it('fails waiting tasks with UNAVAILABLE on close', async () => {
    const p = new PreprocessPool({ workers: 1, maxQueue: 4 });
    const running = p.run({ kind: 'image', bytes: jpeg });
    const waiting = p.run({ kind: 'image', bytes: jpeg });
    const outcomes = Promise.allSettled([running, waiting]);
    await p.close();
    for (const outcome of await outcomes) {
      expect(outcome).toMatchObject({
        status: 'rejected',
        reason: { code: ErrorCode.DependencyUnavailable },
      });
    }
    await expect(p.run({ kind: 'image', bytes: jpeg })).rejects.toMatchObject({
      code: ErrorCode.DependencyUnavailable,
    });
  });
  // Node refuses per-process flags (--max-old-space-size, --trace-gc, …) in a Worker's explicit
  // execArgv: a server started with one must still preprocess, not crash on its first request.
  it.each([
    ['inherited as Node does', ['--max-old-space-size=512']],
    [
      'passed explicitly (beside --conditions), then dropped',
      ['--conditions=ibllm-none', '--max-old-space-size=512'],
    ],
  ])('starts workers under a per-process Node flag: %s', (_how, flags) => {
    const dist = join(__dirname, '..', '..', 'dist', 'index.js');
    const script = [
      `const { PreprocessPool } = require(${JSON.stringify(dist)});`,
      `const bytes = require('node:fs').readFileSync(${JSON.stringify(goldenPath('inputs', 'girl.jpg'))});`,
      'const pool = new PreprocessPool({ workers: 1 });',
      "pool.run({ kind: 'image', bytes }).then((out) => { console.log(out.data.length); return pool.close(); },",
      '  (error) => { console.log(`failed: ${error.message}`); process.exitCode = 3; });',
    ].join('\n');
    const out = execFileSync(process.execPath, [...flags, '-e', script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(out.trim()).toBe(String(3 * 224 * 224));
  });
  it('writes later outputs into recycled tensors, every element rewritten (image, audio, video)', async () => {
    const p = pool({ workers: 1 });
    const local = new InThreadPreprocessor();
    const inputs = [
      { kind: 'image', bytes: jpeg },
      { kind: 'audio', bytes: readFileSync(goldenPath('inputs', 'girl_bgm.wav')) },
      { kind: 'video', bytes: readFileSync(goldenPath('inputs', 'landscape_320x240_10fps_5.3s.mp4')) },
    ] as const;
    for (const task of inputs) {
      const expected = tensor(await local.run(task));
      const first = tensor(await p.run(task));
      expect(sameBits(first, expected), task.kind).toBe(true);
      // Garbage where the next output goes: an element the worker did not write would show.
      first.fill(Number.NaN);
      expect(p.recycle(first)).toBe(true);
      expect(p.stats().spareOutputs).toBe(1);
      const again = tensor(await p.run(task));
      // The recycled buffer went to the worker with the task (detached here) and came back.
      expect(first, task.kind).toHaveLength(0);
      expect(p.stats().spareOutputs).toBe(0);
      expect(again, task.kind).toHaveLength(expected.length);
      expect(sameBits(again, expected), task.kind).toBe(true);
    }
  });

  it('recycles only whole, owned tensors, and nothing once closed', async () => {
    const p = pool({ workers: 1 });
    const out = tensor(await p.run({ kind: 'image', bytes: jpeg }));
    expect(p.recycle(out.subarray(1))).toBe(false);
    expect(p.recycle(new Float32Array(new SharedArrayBuffer(64)))).toBe(false);
    expect(p.recycle(new Float32Array(0))).toBe(false);
    expect(p.recycle(out)).toBe(true);
    expect(p.recycle(out)).toBe(true);
    expect(p.stats().spareOutputs).toBe(1);
    // at most two per worker: the oldest goes
    for (let i = 0; i < 3; i++) expect(p.recycle(new Float32Array(16))).toBe(true);
    expect(p.stats().spareOutputs).toBe(2);
    await p.close();
    expect(p.recycle(new Float32Array(16))).toBe(false);
    expect(new InThreadPreprocessor().recycle()).toBe(false);
  });

  it('spreads a burst of recycled tensors over the workers, two at most with each task', async () => {
    const p = pool({ workers: 3 });
    const recycled = Array.from({ length: 6 }, () => new Float32Array(3 * 224 * 224));
    for (const t of recycled) expect(p.recycle(t)).toBe(true);
    expect(p.stats().spareOutputs).toBe(6);
    // One task takes the two oldest to its worker and leaves the rest for the others.
    await p.run({ kind: 'image', bytes: jpeg });
    expect(p.stats().spareOutputs).toBe(4);
    expect(recycled.map((t) => t.length === 0)).toEqual([true, true, false, false, false, false]);
    await Promise.all(Array.from({ length: 2 }, async () => p.run({ kind: 'image', bytes: jpeg })));
    expect(p.stats().spareOutputs).toBe(0);
    expect(recycled.every((t) => t.length === 0)).toBe(true);
  });

  it('answers a stream of small inputs a few per message, every answer exact', async () => {
    // A long hold, so that a slow or busy machine still holds (the default is 2 ms per task).
    const p = pool({ workers: 1, maxQueue: 64, answerHoldMs: 1000 });
    const expected = tensor(await new InThreadPreprocessor().run({ kind: 'image', bytes: jpeg }));
    const outputs = await Promise.all(
      Array.from({ length: 24 }, async () => p.run({ kind: 'image', bytes: jpeg })),
    );
    for (const output of outputs) expect(sameBits(tensor(output), expected)).toBe(true);
    const { answers, answerMessages } = p.stats();
    expect(answers).toBe(24);
    expect(answerMessages).toBeLessThan(answers);
    expect(answerMessages).toBeGreaterThanOrEqual(24 / 4); // four answers at most in one message
  });

  it('answers at once before a task of another kind, and always when holding is off', async () => {
    const point = { kind: 'point', bytes: cloud, fileName: 'airplane.pt', grouping } as const;
    const image = { kind: 'image', bytes: jpeg } as const;
    const mixed = pool({ workers: 1, maxQueue: 64, answerHoldMs: 1000 });
    await Promise.all([image, point, image, point, image, point].map(async (t) => mixed.run(t)));
    expect(mixed.stats()).toMatchObject({ answers: 6, answerMessages: 6 });
    const off = pool({ workers: 1, maxQueue: 64, answerHoldMs: 0 });
    await Promise.all(Array.from({ length: 12 }, async () => off.run(image)));
    expect(off.stats()).toMatchObject({ answers: 12, answerMessages: 12 });
    expect(() => new PreprocessPool({ answerHoldMs: -1 })).toThrow(RangeError);
  });

  it('sends a task ahead to the worker expected to free up first, not one busy with a video', async () => {
    const p = pool({ workers: 2, maxQueue: 64 });
    const video = {
      kind: 'video',
      bytes: readFileSync(goldenPath('inputs', 'landscape_320x240_10fps_5.3s.mp4')),
    } as const;
    const image = { kind: 'image', bytes: jpeg } as const;
    // Both workers start, and each kind's time per input byte is measured.
    await Promise.all([p.run(video), p.run(image)]);
    await p.run(image);
    const order: string[] = [];
    const runs = [video, image, image, image].map(async (task, i) =>
      p.run(task).then(() => order.push(`${task.kind}${i}`)),
    );
    await Promise.all(runs);
    // One image would have waited behind the video had tasks gone to the worker with the fewest.
    expect(order.at(-1)).toBe('video0');
  });

  it('copies later inputs into the buffers the worker hands back, and every answer stays exact', async () => {
    const p = pool({ workers: 1 });
    const local = new InThreadPreprocessor();
    // a larger input, then smaller ones copied into its returned buffer, then a cloud (whose
    // parsed points may view its file's buffer: that one is not handed back)
    const big = new Uint8Array(jpeg.length + 4096);
    big.set(jpeg);
    const first = tensor(await p.run({ kind: 'image', bytes: big }));
    expect(first).toEqual(tensor(await local.run({ kind: 'image', bytes: big })));
    expect(p.stats().spareInputs).toBe(1);
    for (let i = 0; i < 3; i++) {
      const bytes = new Uint8Array(jpeg);
      expect(tensor(await p.run({ kind: 'image', bytes }))).toEqual(
        tensor(await local.run({ kind: 'image', bytes })),
      );
      expect(p.stats().spareInputs).toBe(1);
    }
    const task = { kind: 'point' as const, bytes: new Uint8Array(cloud), fileName: 'airplane.pt', grouping };
    const [pooled, inThread] = await Promise.all([p.run(task), local.run(task)]);
    if (pooled.kind !== 'point' || inThread.kind !== 'point') throw new Error('expected point outputs');
    expect(pooled.points).toEqual(inThread.points);
    expect(pooled.groups.groupIndices).toEqual(inThread.groups.groupIndices);
    expect(p.stats().spareInputs).toBeLessThanOrEqual(2);
  });
});
