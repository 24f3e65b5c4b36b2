// The machine's memory read bandwidth, measured in the calling run, as the bound the benchmarks
// divide by (bench/vector-store, tools/scripts/fullsize-stack.mjs). "Read bandwidth" here is what
// memcmp reaches: Buffer.compare of two equal buffers far larger than the caches reads both to the
// end with the C library's vector loop and writes nothing. It runs on 1 thread and on every core at
// once (worker threads, each with its own buffers); the bound is the larger of the two aggregate
// rates, so a multi-threaded consumer is never compared with a single-core figure.
import { Buffer } from 'node:buffer';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const DEFAULT_BYTES = 256 * 1024 * 1024;

/** Best of `rounds` timed memcmp passes over two `bytes`-long equal buffers: bytes read per second. */
function memcmpRate(bytes, rounds) {
  const a = Buffer.alloc(bytes, 7);
  const b = Buffer.alloc(bytes, 7);
  let best = Infinity;
  for (let i = 0; i < rounds + 1; i++) {
    const t0 = performance.now();
    if (Buffer.compare(a, b) !== 0) throw new Error('memory-bandwidth: equal buffers compared unequal');
    const ms = performance.now() - t0;
    if (i > 0) best = Math.min(best, ms); // the first pass faults the pages in
  }
  return (2 * bytes) / (best / 1000);
}

if (!isMainThread && workerData?.memoryBandwidthWorker === true) {
  parentPort.once('message', ({ bytes, rounds }) => {
    const a = Buffer.alloc(bytes, 7);
    const b = Buffer.alloc(bytes, 7);
    Buffer.compare(a, b);
    parentPort.postMessage('ready');
    parentPort.once('message', () => {
      const t0 = performance.now();
      for (let i = 0; i < rounds; i++) Buffer.compare(a, b);
      parentPort.postMessage(performance.now() - t0);
    });
  });
}

async function parallelRate(threads, bytes, rounds) {
  const workers = Array.from(
    { length: threads },
    () => new Worker(new URL(import.meta.url), { workerData: { memoryBandwidthWorker: true } }),
  );
  try {
    const next = (w) =>
      new Promise((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
    await Promise.all(workers.map((w) => (w.postMessage({ bytes, rounds }), next(w))));
    const t0 = performance.now();
    await Promise.all(workers.map((w) => (w.postMessage('go'), next(w))));
    const ms = performance.now() - t0;
    return (threads * rounds * 2 * bytes) / (ms / 1000);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * Measures read bandwidth (bytes/s) on one thread and on `threads` threads (default: every core).
 * Takes about a second per GiB of `bytes`.
 */
export async function measureMemoryBandwidth({
  bytes = DEFAULT_BYTES,
  rounds = 4,
  threads = availableParallelism(),
} = {}) {
  const single = memcmpRate(bytes, rounds);
  const all = threads > 1 ? await parallelRate(threads, bytes, rounds) : single;
  return {
    method: `memcmp of two equal ${bytes / 2 ** 20} MiB buffers, best of ${rounds} on 1 thread and ${rounds} passes on ${threads} threads at once`,
    singleThreadBytesPerSecond: Math.round(single),
    allThreadsBytesPerSecond: Math.round(all),
    threads,
    readBytesPerSecond: Math.round(Math.max(single, all)),
  };
}

if (isMainThread && process.argv[1] === new URL(import.meta.url).pathname) {
  const r = await measureMemoryBandwidth();
  process.stdout.write(`${JSON.stringify(r)}\n`);
}
