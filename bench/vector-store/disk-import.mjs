// Streamed import and disk-resident search of the embedded store (#18), on synthetic CC3M-like
// data: clustered unit-norm rows of d=1024. Needs `npx tsc -b libs/vector-store` first.
//
//   node bench/vector-store/disk-import.mjs [--rows 200000] [--queries 50] [--k 10]
//        [--candidates 128] [--quantization i8] [--expansion-add 64] [--dir /tmp/x]
//        [--index ivf|hnsw] [--lists N] [--probes 32]
//
// Prints one JSON line: import rows/s, search p50/p95 (ms), recall@k against an exact scan.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { EmbeddedVectorStore } from '@imagebind-llm/vector-store';
import { centredRandom } from '../lib/random.mjs';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '200000' },
    queries: { type: 'string', default: '50' },
    k: { type: 'string', default: '10' },
    candidates: { type: 'string', default: '128' },
    quantization: { type: 'string', default: 'i8' },
    dir: { type: 'string' },
    'expansion-add': { type: 'string', default: '64' },
    index: { type: 'string', default: 'ivf' },
    lists: { type: 'string' },
    probes: { type: 'string', default: '32' },
  },
});
const rows = Number(values.rows);
const nq = Number(values.queries);
const k = Number(values.k);
const d = 1024;
const chunkRows = 4096;
const centers = 2000;

const rnd = centredRandom(12345);
const center = new Float32Array(centers * d).map(() => rnd());
function point(out, offset) {
  const c = Math.floor((rnd() + 0.5) * centers) * d;
  let norm = 0;
  for (let i = 0; i < d; i++) {
    const v = center[c + i] + 0.7 * rnd();
    out[offset + i] = v;
    norm += v * v;
  }
  const s = 1 / Math.sqrt(norm);
  for (let i = 0; i < d; i++) out[offset + i] *= s;
}
const queries = new Float32Array(nq * d);
for (let q = 0; q < nq; q++) point(queries, q * d);

// Exact top-k of every query, kept while the rows are generated (the bench never holds them all).
const truth = Array.from({ length: nq }, () => []);
function offerExact(chunk, first) {
  const n = chunk.length / d;
  for (let q = 0; q < nq; q++) {
    const list = truth[q];
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += queries[q * d + i] * chunk[r * d + i];
      if (list.length < k || s > list[list.length - 1][1]) {
        list.push([first + r, s]);
        list.sort((a, b) => b[1] - a[1]);
        if (list.length > k) list.pop();
      }
    }
  }
}

async function* chunks() {
  for (let first = 0; first < rows; first += chunkRows) {
    const n = Math.min(chunkRows, rows - first);
    const chunk = new Float32Array(n * d);
    for (let r = 0; r < n; r++) point(chunk, r * d);
    if (nq > 0) offerExact(chunk, first);
    yield chunk;
  }
}

const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'disk-import-'));
const options = {
  dir,
  residentBelow: 0,
  exactBelow: 1,
  quantization: values.quantization,
  hnsw: { rescoreCandidates: Number(values.candidates), expansionAdd: Number(values['expansion-add']) },
  streamedIndex: values.index,
  ivf: {
    rescoreCandidates: Number(values.candidates),
    probes: Number(values.probes),
    ...(values.lists === undefined ? {} : { lists: Number(values.lists) }),
  },
};
try {
  // Generation and the exact truth are timed apart from the import.
  const pre = [];
  for await (const c of chunks()) pre.push(c);
  const store = await EmbeddedVectorStore.open(options);
  const t0 = performance.now();
  await store.importRows('bench', d, rows, pre, {
    onProgress: (done) => {
      if (done % (chunkRows * 10) === 0) process.stderr.write(`${done}/${rows}\r`);
    },
  });
  const importS = (performance.now() - t0) / 1000;
  pre.length = 0;
  await store.close();

  const t1 = performance.now();
  const reopened = await EmbeddedVectorStore.open(options);
  const openMs = performance.now() - t1;
  const times = [];
  let found = 0;
  for (let q = 0; q < nq; q++) {
    const t = performance.now();
    const [hits] = await reopened.search('bench', queries.subarray(q * d, (q + 1) * d), { k });
    times.push(performance.now() - t);
    const got = new Set(hits.map((h) => h.id));
    found += truth[q].filter(([id]) => got.has(id)).length;
  }
  times.sort((a, b) => a - b);
  await reopened.close();
  console.log(
    JSON.stringify({
      rows,
      index: values.index,
      ...(values.index === 'ivf' ? { lists: values.lists ?? 'auto', probes: Number(values.probes) } : {}),
      quantization: values.quantization,
      rescoreCandidates: Number(values.candidates),
      expansionAdd: Number(values['expansion-add']),
      import_rows_per_s: Math.round(rows / importS),
      import_s: Number(importS.toFixed(1)),
      open_ms: Math.round(openMs),
      search_p50_ms: Number(times[Math.floor(times.length / 2)]?.toFixed(2)),
      search_p95_ms: Number(times[Math.floor(times.length * 0.95)]?.toFixed(2)),
      recall_at_k: nq === 0 ? null : found / (nq * k),
      rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20),
    }),
  );
} finally {
  if (values.dir === undefined) rmSync(dir, { recursive: true, force: true });
}
