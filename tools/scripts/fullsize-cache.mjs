#!/usr/bin/env node
// The visual-cache half of tools/scripts/fullsize-stack.mjs, run there as a child process so its
// time and peak RSS are its own:
//
//   node tools/scripts/fullsize-cache.mjs import  --store DIR --knn knn.index
//   node tools/scripts/fullsize-cache.mjs measure --store DIR --knn knn.index [--queries 1000] [--seed S]
//        [--truth FILE] [--rescore N] [--expansion N] [--probes N]
//   both take [--index ivf|hnsw] [--lists N] (import: the index built; measure: the search settings)
//
// `import` copies the faiss index into the embedded store's cache collection the way a retriever
// would (float32 rows kept on disk past RETRIEVER_RESIDENT_BELOW, IVF lists of int8 codes by
// default, or the i8 HNSW graph with --index hnsw) and prints one JSON line.
// `measure` opens that store as the server does, makes --queries queries near stored rows (a row
// plus small noise, renormalised), finds their exact top-10 with usearch's SIMD exact search over
// knn.index read in chunks (the ground truth), then asks the store one query at a time: p50/p99
// latency and recall@10 against that truth, as one JSON line.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const { EmbeddedVectorStore, importFaissIndex, CACHE_COLLECTION } = require('@imagebind-llm/vector-store');
const { openFaissFlatIndex } = require('@imagebind-llm/checkpoint');
const { exactSearch, MetricKind } = require('usearch');

const [command, ...rest] = process.argv.slice(2);
const { values } = parseArgs({
  args: rest,
  options: {
    store: { type: 'string' },
    knn: { type: 'string' },
    queries: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
    k: { type: 'string', default: '10' },
    truth: { type: 'string' },
    rescore: { type: 'string' },
    expansion: { type: 'string' },
    index: { type: 'string', default: 'ivf' },
    lists: { type: 'string' },
    probes: { type: 'string' },
  },
  strict: true,
});
if (values.store === undefined || values.knn === undefined) {
  process.stderr.write('usage: fullsize-cache.mjs import|measure --store DIR --knn knn.index\n');
  process.exit(2);
}
const say = (line) => process.stderr.write(`${line}\n`);
// --rescore / --expansion try other search settings on the same graph (RETRIEVER_RESCORE_CANDIDATES,
// RETRIEVER_HNSW_EXPANSION_SEARCH); unset, the store's defaults apply, as in the server.
const hnsw = {
  ...(values.rescore === undefined ? {} : { rescoreCandidates: Number(values.rescore) }),
  ...(values.expansion === undefined ? {} : { expansionSearch: Number(values.expansion) }),
};
// --probes / --rescore set the IVF search (RETRIEVER_IVF_PROBES, RETRIEVER_RESCORE_CANDIDATES).
const ivf = {
  ...(values.lists === undefined ? {} : { lists: Number(values.lists) }),
  ...(values.probes === undefined ? {} : { probes: Number(values.probes) }),
  ...(values.rescore === undefined ? {} : { rescoreCandidates: Number(values.rescore) }),
};
const STORE_OPTIONS = { dir: values.store, quantization: 'i8', hnsw, ivf, streamedIndex: values.index };

async function runImport() {
  const t0 = performance.now();
  const store = await EmbeddedVectorStore.open(STORE_OPTIONS);
  let last = 0;
  const result = await importFaissIndex(store, CACHE_COLLECTION, values.knn, {
    replace: true,
    batchSize: 16384,
    onIndexProgress: ({ phase, done, total }) => {
      const now = performance.now();
      if (done === total || now - last > 10_000) {
        last = now;
        say(`index ${phase} ${done}/${total}, ${((now - t0) / 1000).toFixed(0)} s`);
      }
    },
    onProgress: (done, total) => {
      const now = performance.now();
      if (done === total || now - last > 10_000) {
        last = now;
        const s = (now - t0) / 1000;
        say(
          `import ${done}/${total} rows, ${(done / s).toFixed(0)} rows/s, ETA ${((total - done) / (done / s)).toFixed(0)} s`,
        );
      }
    },
  });
  await store.flush();
  await store.close();
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(
    `${JSON.stringify({ ...result, index: values.index, ...ivf, seconds, rows_per_s: result.imported / seconds })}\n`,
  );
}

/** The ground truth a previous measure saved, if it was made for the same knn, queries and k. */
function readTruth(path, key) {
  if (!existsSync(path)) return undefined;
  const saved = JSON.parse(readFileSync(path, 'utf8'));
  return Object.entries(key).every(([name, value]) => saved[name] === value) ? saved.best : undefined;
}

/** xorshift32 in [-0.5, 0.5). */
function prng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32 - 0.5;
  };
}

async function runMeasure() {
  const k = Number(values.k);
  const nq = Number(values.queries);
  let t0 = performance.now();
  const store = await EmbeddedVectorStore.open(STORE_OPTIONS);
  const openS = (performance.now() - t0) / 1000;
  const info = await store.describe(CACHE_COLLECTION);
  if (info === undefined || info.count === 0)
    throw new Error(`no ${CACHE_COLLECTION} collection in ${values.store}: run import first`);
  const index = await openFaissFlatIndex(values.knn);
  const d = index.d;
  const rand = prng(Number(values.seed));
  const queries = new Float32Array(nq * d);
  for (let i = 0; i < nq; i++) {
    const row = Math.floor((rand() + 0.5) * index.ntotal);
    const v = await index.readVectors(row, 1);
    let norm = 0;
    for (let j = 0; j < d; j++) {
      const x = v[j] + 0.01 * rand();
      queries[i * d + j] = x;
      norm += x * x;
    }
    norm = Math.sqrt(norm);
    for (let j = 0; j < d; j++) queries[i * d + j] /= norm;
  }
  // Ground truth: exact top-k of every query over the file, chunk by chunk. --truth keeps it in a
  // file (keyed by the knn size, queries, seed and k), so trying other search settings is quick.
  t0 = performance.now();
  const truthKey = { ntotal: index.ntotal, d, nq, k, seed: Number(values.seed) };
  let best = values.truth === undefined ? undefined : readTruth(values.truth, truthKey);
  if (best === undefined) {
    best = Array.from({ length: nq }, () => []);
    for await (const { first, vectors } of index.batches(65536)) {
      const m = exactSearch(vectors, queries, d, k, MetricKind.IP);
      for (let i = 0; i < nq; i++) {
        const merged = best[i];
        for (let j = 0; j < k; j++) {
          const key = m.keys[i * k + j];
          if (key === undefined) continue;
          merged.push({ id: first + Number(key), distance: m.distances[i * k + j] });
        }
        merged.sort((a, b) => a.distance - b.distance || a.id - b.id);
        merged.length = Math.min(merged.length, k);
      }
      if (first % (65536 * 16) === 0) say(`exact truth: ${first + vectors.length / d}/${index.ntotal} rows`);
    }
    if (values.truth !== undefined) writeFileSync(values.truth, JSON.stringify({ ...truthKey, best }));
  } else say(`exact truth read from ${values.truth}`);
  const exactS = (performance.now() - t0) / 1000;
  await index.close();
  // The store, one query per call, as the retriever serves them.
  for (let i = 0; i < Math.min(20, nq); i++)
    await store.search(CACHE_COLLECTION, queries.subarray(i * d, (i + 1) * d), { k });
  const latencies = [];
  let hits = 0;
  for (let i = 0; i < nq; i++) {
    const q = queries.subarray(i * d, (i + 1) * d);
    const ts = performance.now();
    const [found] = await store.search(CACHE_COLLECTION, q, { k });
    latencies.push(performance.now() - ts);
    const truth = new Set(best[i].map((h) => h.id));
    for (const hit of found) if (truth.has(Number(hit.id))) hits++;
  }
  latencies.sort((a, b) => a - b);
  const pick = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  await store.close();
  process.stdout.write(
    `${JSON.stringify({
      count: info.count,
      queries: nq,
      k,
      index: values.index,
      rescore_candidates: hnsw.rescoreCandidates ?? null,
      expansion_search: hnsw.expansionSearch ?? null,
      probes: ivf.probes ?? null,
      recall_at_10: hits / (nq * k),
      p50_ms: pick(0.5),
      p99_ms: pick(0.99),
      open_s: openS,
      exact_s: exactS,
      rss_gib: process.memoryUsage().rss / 2 ** 30,
    })}\n`,
  );
}

try {
  if (command === 'import') await runImport();
  else if (command === 'measure') await runMeasure();
  else throw new Error(`unknown command ${command}: import or measure`);
} catch (error) {
  say(`fullsize-cache: ${error?.stack ?? error}`);
  process.exitCode = 1;
}
