import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSyntheticFaissIndex } from '@imagebind-llm/checkpoint';
import type { retrieverV1 } from '@imagebind-llm/proto';
import { EmbeddedVectorStore } from '@imagebind-llm/vector-store';
import { afterAll, describe, expect, it } from 'vitest';
import { RetrieverServiceImpl } from './retriever.service-impl';

const root = mkdtempSync(join(tmpdir(), 'retriever-import-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('RetrieverService.ImportIndex', () => {
  it('streams row progress, then the IVF build (train, assign) of a streamed import, then done', async () => {
    const rows = 5000;
    await writeSyntheticFaissIndex(join(root, 'knn.index'), {
      count: rows,
      dimension: 32,
      seed: 5,
      clusters: 20,
    });
    // Streamed and indexed: residentBelow 0 keeps the rows on disk, exactBelow 1000 builds IVF lists.
    const store = await EmbeddedVectorStore.open({
      dir: join(root, 'store'),
      residentBelow: 0,
      exactBelow: 1000,
    });
    const service = new RetrieverServiceImpl(store, { importRoot: root });
    const messages: retrieverV1.ImportIndexResponse[] = [];
    for await (const m of service.importIndex(
      { collection: 'cache', sourcePath: 'knn.index', replace: true },
      { signal: new AbortController().signal },
    ))
      messages.push(m);

    const phases = messages.map((m) => m.indexPhase);
    const firstIndex = phases.findIndex((p) => p !== '');
    // Rows first (no index step), then train, then assign, then the final message.
    expect(messages.slice(0, firstIndex).every((m) => m.indexPhase === '' && !m.done)).toBe(true);
    expect(messages[firstIndex - 1]).toMatchObject({ imported: rows, total: rows });
    const steps = messages.slice(firstIndex, -1);
    expect([...new Set(steps.map((m) => m.indexPhase))]).toEqual(['train', 'assign']);
    expect(steps.every((m) => m.imported === rows && m.total === rows && !m.done)).toBe(true);
    expect(steps.filter((m) => m.indexPhase === 'train').at(-1)).toMatchObject({
      indexDone: 10,
      indexTotal: 10,
    });
    const assign = steps.filter((m) => m.indexPhase === 'assign');
    expect(assign.at(-1)).toMatchObject({ indexDone: rows, indexTotal: rows });
    // One message per percent at most, however many steps the build reports.
    expect(assign.length).toBeLessThanOrEqual(101);
    expect(messages.at(-1)).toMatchObject({ imported: rows, total: rows, done: true, indexPhase: '' });

    expect(await store.describe('cache')).toMatchObject({ count: rows });
    const query = new Float32Array(32);
    query[0] = 1;
    const [hits] = await store.search('cache', query, { k: 3 });
    expect(hits).toHaveLength(3);
    await store.close();
  });
});
