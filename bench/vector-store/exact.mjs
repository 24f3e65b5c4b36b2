// Exact search of the embedded store against the memory-bandwidth bound (issue #18 item 3).
// Needs `npm run build` first (the scan workers run the compiled library).
//
//   node bench/vector-store/exact.mjs [--rows 200000] [--dimension 1024] [--k 10]
//        [--batches 1,8,32] [--reps 5] [--json]
//
// One run measures, side by side on the same rows: the machine's read bandwidth (bench/lib), the
// scalar scan (one query, plain JS, the store's scan before the SIMD kernel), the batched
// WebAssembly SIMD scan on one thread, and the ExactScanPool (every core) that the store uses.
// Throughput is given as the bytes of rows a search covers per second — queries × rows × d × 4 /
// time — so ÷ bandwidth is the fraction of the bound: a scan that reads every row once per query
// cannot pass 1.0; a batch reads the rows once for all its queries and can. Median of --reps.
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ExactScanPool, exactTopKBatch, scalarTopK, sharedFloat32 } from '@imagebind-llm/vector-store';
import { measureMemoryBandwidth } from '../lib/memory-bandwidth.mjs';
import { centredRandom } from '../lib/random.mjs';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '200000' },
    dimension: { type: 'string', default: '1024' },
    k: { type: 'string', default: '10' },
    batches: { type: 'string', default: '1,8,32' },
    reps: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
});
const rows = Number(values.rows);
const d = Number(values.dimension);
const k = Number(values.k);
const reps = Math.max(1, Number(values.reps));
const batches = values.batches.split(',').map(Number);
const log = (line) => {
  if (!values.json) process.stdout.write(`${line}\n`);
};

// Clustered unit rows (CC3M-like), the same on every run.
const rnd = centredRandom(20240101);
const vectors = sharedFloat32(rows * d);
const centers = Float32Array.from({ length: 256 * d }, rnd);
for (let r = 0; r < rows; r++) {
  const c = (r % 256) * d;
  let norm = 0;
  for (let i = 0; i < d; i++) norm += (vectors[r * d + i] = centers[c + i] + 0.5 * rnd()) ** 2;
  const s = 1 / Math.sqrt(norm);
  for (let i = 0; i < d; i++) vectors[r * d + i] *= s;
}
const ids = Float64Array.from({ length: rows }, (_, i) => i);
const maxBatch = Math.max(...batches);
const queries = new Float32Array(maxBatch * d);
for (let q = 0; q < maxBatch; q++)
  queries.set(vectors.subarray(((q * 7919) % rows) * d, (((q * 7919) % rows) + 1) * d), q * d);

const bytes = rows * d * 4;
log(
  `rows ${rows} × ${d} (${(bytes / 1e9).toFixed(2)} GB), k ${k}, ${availableParallelism()} cores, median of ${reps}`,
);
const bandwidth = await measureMemoryBandwidth();
const bound = bandwidth.readBytesPerSecond;
log(`bound: ${(bound / 1e9).toFixed(2)} GB/s read (${bandwidth.method})`);

async function time(fn) {
  await fn(); // warm: compiles the kernel, starts the workers, faults the pages in
  const ms = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)];
}

const pool = new ExactScanPool();
const results = [];
async function measure(path, batch, fn) {
  const ms = await time(fn);
  const scanned = (batch * bytes) / (ms / 1000);
  const r = {
    path,
    batch,
    ms: Number(ms.toFixed(2)),
    queries_per_second: Number(((batch * 1000) / ms).toFixed(2)),
    scanned_gb_per_s: Number((scanned / 1e9).toFixed(2)),
    bound_ratio: Number((scanned / bound).toFixed(3)),
  };
  results.push(r);
  log(
    `${path.padEnd(22)} batch ${String(batch).padStart(3)}: ${r.ms.toFixed(1).padStart(8)} ms  ` +
      `${r.queries_per_second.toFixed(1).padStart(7)} q/s  ${r.scanned_gb_per_s.toFixed(2).padStart(6)} GB/s  ` +
      `÷ bound ${r.bound_ratio.toFixed(3)}`,
  );
}

const one = queries.subarray(0, d);
await measure('scalar (1 thread)', 1, () => scalarTopK(vectors, ids, rows, one, k));
for (const b of batches) {
  await measure('simd (1 thread)', b, () =>
    exactTopKBatch(vectors, ids, rows, queries.subarray(0, b * d), d, k),
  );
}
for (const b of batches) {
  await measure(`pool (${pool.threads} threads)`, b, () =>
    pool.topK({ vectors, ids, rows, queries: queries.subarray(0, b * d), dimension: d, k }),
  );
}
// The pool's answers are the one-thread scan's, bit for bit (a bench that drifted would say so).
const check = await pool.topK({ vectors, ids, rows, queries: queries.subarray(0, 8 * d), dimension: d, k });
const same =
  JSON.stringify(check) ===
  JSON.stringify(exactTopKBatch(vectors, ids, rows, queries.subarray(0, 8 * d), d, k));
await pool.close();
const speedup = (path, batch) => results.find((r) => r.path.startsWith(path) && r.batch === batch)?.ms;
const scalarMs = speedup('scalar', 1);
const summary = {
  rows,
  dimension: d,
  k,
  cores: availableParallelism(),
  bound_gb_per_s: Number((bound / 1e9).toFixed(2)),
  bandwidth,
  results,
  pool_equals_one_thread: same,
  best_bound_ratio: Math.max(...results.map((r) => r.bound_ratio)),
  pool_batch1_vs_scalar: Number((scalarMs / speedup('pool', 1)).toFixed(2)),
};
log(`pool answers equal the one-thread scan: ${same}`);
log(`1 query: pool ÷ scalar ${summary.pool_batch1_vs_scalar}×; best ÷ bound ${summary.best_bound_ratio}`);
if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
if (!same) process.exitCode = 1;
