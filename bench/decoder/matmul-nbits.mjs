// MatMulNBits at decode shape (one row) on the CPU provider: how the quantization block size and
// the bit width move the weight-read rate the int8/int4 decoders run at (issue #18). Needs
// `npm run build` first.
//
//   node bench/decoder/matmul-nbits.mjs [--dim 4096] [--hidden 11008] [--pairs 4] [--bits 4,8]
//        [--blocks 32,64,128] [--accuracy 4] [--threads 0] [--spin] [--reps 20] [--json]
//
// One graph per (bits, block) of `pairs` × (dim→hidden, hidden→dim) MatMulNBits — LLaMA-7B's MLP
// shapes, far larger than the caches — with random packed weights. Each is timed on a [1, dim]
// input (median of --reps) side by side in one run, with the machine's read bandwidth measured in
// the same run: weight bytes read per second ÷ bandwidth is the fraction of the memory bound.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createOrtSession, hostTensor } from '@imagebind-llm/inference';
import {
  attr,
  GraphBuilder,
  OnnxType,
  serializeModel,
} from '../../libs/model-builder/dist/onnx/onnx-graph.js';
import { measureMemoryBandwidth } from '../lib/memory-bandwidth.mjs';

const { values } = parseArgs({
  options: {
    dim: { type: 'string', default: '4096' },
    hidden: { type: 'string', default: '11008' },
    pairs: { type: 'string', default: '4' },
    bits: { type: 'string', default: '4,8' },
    blocks: { type: 'string', default: '32,64,128' },
    accuracy: { type: 'string', default: '4' },
    threads: { type: 'string', default: '0' },
    spin: { type: 'boolean', default: false },
    reps: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
});
const dim = Number(values.dim);
const hidden = Number(values.hidden);
const pairs = Number(values.pairs);
const reps = Number(values.reps);
const log = (line) => {
  if (!values.json) process.stdout.write(`${line}\n`);
};

let state = 7;
const byte = () => {
  state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
  return state >>> 24;
};

/** The graph's file and the bytes its weights (packed + scales) occupy. */
function buildGraph(dir, bits, block) {
  const g = new GraphBuilder(`nbits_${bits}_${block}`);
  let x = g.input('x', OnnxType.FLOAT, [1, dim]);
  let weightBytes = 0;
  for (let l = 0; l < 2 * pairs; l++) {
    const [inn, out] = l % 2 === 0 ? [dim, hidden] : [hidden, dim];
    const blocks = Math.ceil(inn / block);
    const blockBytes = (block * bits) / 8;
    const packed = Uint8Array.from({ length: out * blocks * blockBytes }, byte);
    // Scales small enough that the chain's activations stay finite.
    const scales = Float32Array.from({ length: out * blocks }, () => 1e-3 * (1 + byte() / 256));
    weightBytes += packed.byteLength + scales.byteLength;
    const p = g.initializer(`w${l}.q`, OnnxType.UINT8, [out, blocks, blockBytes], packed);
    const s = g.floatInit(`w${l}.scales`, [out * blocks], scales);
    x = g.op1(
      'MatMulNBits',
      [x, p, s],
      {
        K: attr.int(inn),
        N: attr.int(out),
        bits: attr.int(bits),
        block_size: attr.int(block),
        accuracy_level: attr.int(Number(values.accuracy)),
      },
      'com.microsoft',
    );
  }
  g.output(x, 'y', OnnxType.FLOAT, [1, dim]);
  const file = join(dir, `nbits-${bits}-${block}.onnx`);
  writeFileSync(
    file,
    serializeModel(g, { opsets: { '': 17, 'com.microsoft': 1 }, producerVersion: 'bench' }),
  );
  return { file, weightBytes };
}

const dir = mkdtempSync(join(tmpdir(), 'ibllm-nbits-'));
try {
  const bandwidth = await measureMemoryBandwidth();
  const bound = bandwidth.readBytesPerSecond;
  log(`bound: ${(bound / 1e9).toFixed(2)} GB/s read (${bandwidth.method})`);
  log(
    `${2 * pairs} MatMulNBits ${dim}↔${hidden}, 1 row, accuracy_level ${values.accuracy}, median of ${reps}`,
  );
  const x = hostTensor(
    'float32',
    [1, dim],
    Float32Array.from({ length: dim }, () => byte() / 128 - 1),
  );
  const results = [];
  for (const bits of values.bits.split(',').map(Number)) {
    for (const block of values.blocks.split(',').map(Number)) {
      const { file, weightBytes } = buildGraph(dir, bits, block);
      const session = await createOrtSession(file, {
        allowSpinning: values.spin,
        intraOpThreads: Number(values.threads),
      });
      try {
        for (let i = 0; i < 3; i++) await session.run({ x });
        const ms = [];
        for (let i = 0; i < reps; i++) {
          const t0 = performance.now();
          await session.run({ x });
          ms.push(performance.now() - t0);
        }
        ms.sort((a, b) => a - b);
        const median = ms[Math.floor(ms.length / 2)];
        const weights = 2 * pairs * dim * hidden;
        const r = {
          bits,
          block,
          bytes_per_weight: Number((weightBytes / weights).toFixed(4)),
          ms: Number(median.toFixed(2)),
          weight_gb_per_s: Number((weightBytes / (median / 1000) / 1e9).toFixed(2)),
          gweights_per_s: Number((weights / (median / 1000) / 1e9).toFixed(2)),
          bound_ratio: Number((weightBytes / (median / 1000) / bound).toFixed(3)),
        };
        results.push(r);
        log(
          `int${bits} block ${String(block).padStart(3)}: ${r.ms.toFixed(2).padStart(7)} ms  ` +
            `${r.weight_gb_per_s.toFixed(2).padStart(6)} GB/s of weights  ${r.gweights_per_s.toFixed(2)} G weights/s  ` +
            `÷ bound ${r.bound_ratio.toFixed(3)}`,
        );
      } finally {
        await session.release();
      }
      rmSync(file);
    }
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ bound_gb_per_s: bound / 1e9, bandwidth, results })}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
