// A build is all or nothing: an aborted or failing `models build` leaves no partial component and
// keeps a complete repository already at `out`; the streamed knn copy writes the bytes the
// whole-index copy did. Built from the golden tiny-a checkpoints (official formats).
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeNpy, readFaissIndex } from '@imagebind-llm/checkpoint';
import { listComponents, resolveComponent } from '@imagebind-llm/inference';
import { fileDigests, goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import type { BuildProgress } from './build-progress';
import { buildLanguageRepository, type BuildRepositoryOptions } from './repository.builder';
import { RepositoryStaging } from './repository-staging';

const root = mkdtempSync(join(tmpdir(), 'staging-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const fresh = (): string => join(root, `repo-${counter++}`);

const language = (out: string, extra: Partial<BuildRepositoryOptions> = {}): BuildRepositoryOptions => ({
  adapter: goldenPath('7B.pth'),
  llamaDir: goldenPath('llama'),
  llamaType: '7B',
  knn: goldenPath('knn.index'),
  out,
  ...extra,
});

/** Names in the repository's component folders that are not plain versions. */
function leftovers(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((c) =>
    readdirSync(join(dir, c))
      .filter((v) => v.startsWith('.'))
      .map((v) => `${c}/${v}`),
  );
}

describe('buildLanguageRepository is all or nothing', () => {
  it('copies the faiss index into vectors.npy chunk by chunk, byte for byte what the whole-index copy wrote', async () => {
    const out = fresh();
    const phases: BuildProgress[] = [];
    await buildLanguageRepository(language(out, { onBytes: (p) => phases.push(p) }));
    const index = await readFaissIndex(goldenPath('knn.index'));
    // The golden manifest: 2048 random unit vectors of d=1024 (faiss IndexFlatIP).
    expect([index.ntotal, index.d]).toEqual([2048, 1024]);
    const before = encodeNpy({
      dtype: 'float32',
      shape: [index.ntotal, index.d],
      data: new Uint8Array(index.vectors.buffer, index.vectors.byteOffset, index.vectors.byteLength),
    });
    const knn = resolveComponent(out, 'knn-cache');
    expect(Buffer.compare(readFileSync(knn.file('vectors')), Buffer.from(before))).toBe(0);
    expect(knn.json.config).toMatchObject({ count: 2048, dimension: 1024, indexType: 'IndexFlatIP' });

    // Progress: every long step starts at 0 and closes with done === total.
    const closed = phases.filter((p) => p.final === true).map((p) => p.phase);
    expect(closed).toEqual([
      'sha256 7B.pth',
      'sha256 consolidated.00.pth',
      'sha256 params.json',
      'bind/model.onnx',
      'llama-decoder/model.onnx',
      'llama-decoder/visual.onnx',
      'sha256 tokenizer.model',
      'sha256 knn.index',
      'knn-cache/vectors.npy',
    ]);
    for (const p of phases.filter((q) => q.final === true)) expect(p.done).toBe(p.total);
    const copy = phases.filter((p) => p.phase === 'knn-cache/vectors.npy');
    // 2048 rows in chunks of 4096 rows: one chunk, all 8 MiB of it.
    expect(copy.map((p) => p.done)).toEqual([0, 2048 * 1024 * 4, 2048 * 1024 * 4]);
    expect(copy[0]!.total).toBe(2048 * 1024 * 4);
    // The decoder's total is estimated from the tensors its graph needs before it starts; what it
    // really read (the closing report) is within 1 % of that (a few small tensors are read twice).
    const decoder = phases.filter((p) => p.phase === 'llama-decoder/model.onnx');
    expect(Math.abs(decoder.at(-1)!.total / decoder[0]!.total - 1)).toBeLessThan(0.01);
    expect(leftovers(out)).toEqual([]);
  });

  it('aborted midway leaves a previous complete repository exactly as it was, and no partial folder', async () => {
    const out = fresh();
    await buildLanguageRepository(language(out));
    const before = fileDigests(out);
    const controller = new AbortController();
    const build = buildLanguageRepository(
      language(out, {
        version: '1',
        signal: controller.signal,
        onBytes: (p) => {
          // Halfway through reading the decoder's weights (bind is already built by then).
          if (p.phase === 'llama-decoder/model.onnx' && p.done > 0) controller.abort();
        },
      }),
    );
    await expect(build).rejects.toThrow(/abort/i);
    expect(fileDigests(out)).toEqual(before);
    expect(leftovers(out)).toEqual([]);
  });

  it('failing late (at the knn copy) keeps the old components: bind and the decoder are not half replaced', async () => {
    const out = fresh();
    await buildLanguageRepository(language(out));
    const before = fileDigests(out);
    const build = buildLanguageRepository(
      language(out, {
        onBytes: (p) => {
          if (p.phase === 'knn-cache/vectors.npy' && p.done > 0) throw new Error('disk full (simulated)');
        },
      }),
    );
    await expect(build).rejects.toThrow('disk full (simulated)');
    expect(fileDigests(out)).toEqual(before);
    expect(leftovers(out)).toEqual([]);
  });

  it('aborted into a new folder leaves nothing behind, not even empty component folders', async () => {
    const out = fresh();
    const controller = new AbortController();
    const build = buildLanguageRepository(
      language(out, {
        signal: controller.signal,
        onProgress: (line) => {
          if (line.startsWith('building llama-decoder/visual.onnx')) controller.abort();
        },
      }),
    );
    await expect(build).rejects.toThrow(/abort/i);
    expect(existsSync(out)).toBe(false);
  });

  it('a rebuild that succeeds replaces every component and leaves no old copy', async () => {
    const out = fresh();
    await buildLanguageRepository(language(out));
    const first = resolveComponent(out, 'bind').json.createdAt;
    await new Promise((r) => setTimeout(r, 5));
    await buildLanguageRepository(language(out));
    expect(resolveComponent(out, 'bind').json.createdAt).not.toBe(first);
    expect(leftovers(out)).toEqual([]);
  });
});

describe('RepositoryStaging', () => {
  // Far above any pid Linux hands out (pid_max is at most 4 194 304): never a running process.
  const DEAD_PID = 999_999_999;

  it('stages out of sight of the repository reader and commits by renaming', () => {
    const out = fresh();
    const staging = new RepositoryStaging(out, '2', 'test');
    const dir = staging.dir('bind');
    expect(dir).toBe(join(out, 'bind', '.2.partial-test'));
    writeFileSync(join(dir, 'model.json'), JSON.stringify({ format: 1, files: {} }));
    // A staged folder with a model.json is still no version: readers see no component at all.
    expect(listComponents(out)).toEqual([]);
    staging.commit();
    expect(listComponents(out)).toEqual([{ component: 'bind', versions: ['2'] }]);
    expect(readdirSync(join(out, 'bind'))).toEqual(['2']);
  });

  it('clears what a killed build left: its partial folder goes, a version it had moved aside comes back', () => {
    const out = fresh();
    mkdirSync(join(out, 'bind', `.1.partial-${DEAD_PID}`), { recursive: true });
    mkdirSync(join(out, 'bind', `.1.old-${DEAD_PID}`), { recursive: true });
    writeFileSync(join(out, 'bind', `.1.old-${DEAD_PID}`, 'model.json'), '{}');
    const staging = new RepositoryStaging(out, '3', 'test');
    staging.dir('bind');
    const names = readdirSync(join(out, 'bind')).sort();
    expect(names).toContain('1');
    expect(names).not.toContain(`.1.partial-${DEAD_PID}`);
    expect(names).not.toContain(`.1.old-${DEAD_PID}`);
    expect(readFileSync(join(out, 'bind', '1', 'model.json'), 'utf8')).toBe('{}');
    staging.discard();
    expect(readdirSync(join(out, 'bind'))).not.toContain('.3.partial-test');
  });

  it('refuses a version that is not a plain folder name', () => {
    expect(() => new RepositoryStaging(fresh(), '../x')).toThrow(/plain folder name/);
    expect(() => new RepositoryStaging(fresh(), '.hidden')).toThrow(/plain folder name/);
  });
});
