#!/usr/bin/env node
// Full-size proof of `ibllm models build` (run by hand, never in CI: it writes ~10 GB).
//
//   npm run build && node tools/scripts/fullsize-build.mjs [--dir DIR] [--keep] [--layers N]
//                                                          [--seed S] [--tokenizer PATH]
//
// It writes random-weight checkpoints in the official formats at the real 7B widths (dim 4096,
// bind hidden 16384, 32 prefix_query rows, LoRA rank 16, 32 heads, FFN 11008, vocab 32000; only
// the number of LLaMA layers is cut, 2 by default), copies a LLaMA tokenizer.model, then runs the
// compiled CLI as a child process: `ibllm models build --external-data auto`, and one greedy
// decode step with `ibllm generate`. It proves that
//   - the readers stream a multi-GB adapter and base checkpoint (peak RSS of the build is printed,
//     with the largest RSS sampled in each build phase, so a step that holds too much shows);
//   - the decoder's weights go to external data past 2 GB (model.onnx.data > 2 GiB is checked);
//   - the repository loads in onnxruntime and decodes.
// Needs about 12 GB free under --dir (default: the OS temp dir); it works in a new folder there,
// deleted at the end unless --keep.
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { clearInterval, setInterval } from 'node:timers';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const { values: args } = parseArgs({
  options: {
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    layers: { type: 'string', default: '2' },
    seed: { type: 'string', default: '20240101' },
    tokenizer: {
      type: 'string',
      default: join(root, '..', 'shared', 'golden', 'tiny-a', 'llama', 'tokenizer.model'),
    },
  },
  strict: true,
});

const OPTIONS = {
  dim: 4096,
  nLayers: Number(args.layers),
  nHeads: 32,
  multipleOf: 256,
  vocabSize: 32000,
  loraRank: 16,
  bindHidden: 16384,
  bindIn: 1024,
  queryLayer: 32,
  seed: Number(args.seed),
  baseDtype: 'float16',
};

class Failure extends Error {}

function fail(message) {
  throw new Failure(message);
}

const fmtBytes = (n) => (n >= GiB ? `${(n / GiB).toFixed(2)} GiB` : `${(n / MiB).toFixed(1)} MiB`);
const fmtSeconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** VmRSS / VmHWM of a live process in bytes, or undefined once it is gone (Linux only). */
function procMemory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: field('VmRSS'), hwm: field('VmHWM') };
  } catch {
    return undefined;
  }
}

/**
 * Runs `node <args>` with a preload that records the process's own peak RSS (getrusage maxrss)
 * at exit, echoes its output with elapsed times, and samples VmRSS every 100 ms, attributing the
 * largest sample to the phase named by the last progress line.
 */
async function runNode(label, nodeArgs, workDir) {
  const maxRssFile = join(workDir, `${label}.maxrss`);
  const preload = join(workDir, 'report-maxrss.cjs');
  writeFileSync(
    preload,
    "process.on('exit', () => require('node:fs').writeFileSync(process.env.FULLSIZE_MAXRSS_FILE, String(process.resourceUsage().maxRSS * 1024)));\n",
  );
  const started = performance.now();
  const child = spawn(process.execPath, ['--require', preload, ...nodeArgs], {
    cwd: root,
    env: { ...process.env, FULLSIZE_MAXRSS_FILE: maxRssFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const phases = [];
  let phase = { name: 'start', at: 0, maxRss: 0 };
  phases.push(phase);
  let stdout = '';
  const sample = () => {
    const mem = procMemory(child.pid);
    if (mem !== undefined && mem.rss > phase.maxRss) phase.maxRss = mem.rss;
    return mem;
  };
  const timer = setInterval(sample, 100);
  const onLine = (line) => {
    const at = performance.now() - started;
    const mem = sample();
    const memText = mem === undefined ? '' : ` [rss ${fmtBytes(mem.rss)}, peak ${fmtBytes(mem.hwm)}]`;
    console.log(`  ${label} +${fmtSeconds(at).padStart(8)}${memText} ${line}`);
    phase = { name: line.trim(), at, maxRss: mem?.rss ?? 0 };
    phases.push(phase);
  };
  createInterface({ input: child.stderr }).on('line', onLine);
  child.stdout.on('data', (chunk) => {
    stdout += chunk.toString();
  });
  const status = await new Promise((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal }));
  });
  clearInterval(timer);
  const wallMs = performance.now() - started;
  const maxRss = existsSync(maxRssFile) ? Number(readFileSync(maxRssFile, 'utf8')) : undefined;
  if (status.code !== 0) {
    fail(
      `${label} failed (${status.signal ?? `exit ${status.code}`}) after ${fmtSeconds(wallMs)}` +
        (status.signal === 'SIGKILL' ? ' — killed, most likely by the kernel OOM killer (see dmesg)' : '') +
        `; last phase: ${phase.name}, largest RSS sampled there ${fmtBytes(phase.maxRss)}`,
    );
  }
  return { wallMs, maxRss, phases, stdout };
}

function filesUnder(dir) {
  const out = [];
  for (const name of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, name.name);
    if (name.isDirectory()) out.push(...filesUnder(path));
    else out.push({ path, bytes: statSync(path).size });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const cli = join(root, 'tools', 'cli', 'bin', 'ibllm.js');
  for (const built of [
    'tools/cli/dist/main.js',
    'libs/model-builder/dist/index.js',
    'libs/checkpoint/dist/index.js',
  ]) {
    if (!existsSync(join(root, built))) fail(`${built} is missing: run \`npm run build\` first`);
  }
  if (!existsSync(args.tokenizer))
    fail(`tokenizer.model not found at ${args.tokenizer} (pass --tokenizer PATH)`);
  const {
    writeSyntheticLanguageCheckpoints,
    planSyntheticLanguageCheckpoints,
  } = require('@imagebind-llm/model-builder');
  const { float32Tensor, writeNpy } = require('@imagebind-llm/checkpoint');

  // A fresh folder even under --dir: it is deleted at the end.
  const parent = resolve(args.dir ?? tmpdir());
  mkdirSync(parent, { recursive: true });
  const workDir = mkdtempSync(join(parent, 'ibllm-fullsize-'));
  const plan = planSyntheticLanguageCheckpoints(OPTIONS);
  const numel = (ts) => ts.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const adapterBytes = plan.adapter.reduce(
    (n, t) => n + t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'float32' ? 4 : 2),
    0,
  );
  const baseBytes = numel(plan.base) * 2;
  // Repository: every weight as float32 once (bind, decoder), plus visual.onnx's W_v and W_o.
  const repoBytes = (numel(plan.adapter) + numel(plan.base)) * 4 + OPTIONS.nLayers * 2 * OPTIONS.dim ** 2 * 4;
  const needed = adapterBytes + baseBytes + repoBytes + GiB;
  const fs = statfsSync(workDir);
  const free = fs.bavail * fs.bsize;
  console.log(`work dir ${workDir}: ${fmtBytes(free)} free, about ${fmtBytes(needed)} needed`);
  if (free < needed) fail(`not enough disk space under ${workDir}; pass --dir on a larger disk`);

  const timings = [];
  try {
    // 1. checkpoints
    console.log(
      `\n[1/3] writing synthetic checkpoints: dim ${OPTIONS.dim}, ${OPTIONS.nLayers} layers, ${OPTIONS.nHeads} heads, ` +
        `FFN ${plan.llama.ffnHidden}, vocab ${OPTIONS.vocabSize}, bind ${OPTIONS.bindIn}→${OPTIONS.bindHidden}→${OPTIONS.dim}, ` +
        `${plan.adapter.length} adapter tensors (${(numel(plan.adapter) / 1e6).toFixed(1)} M values), ` +
        `${plan.base.length} base tensors (${(numel(plan.base) / 1e6).toFixed(1)} M values)`,
    );
    let t0 = performance.now();
    const ckptDir = join(workDir, 'checkpoints');
    const written = await writeSyntheticLanguageCheckpoints(ckptDir, {
      ...OPTIONS,
      onProgress: (m) => console.log(`  ${m}`),
    });
    copyFileSync(args.tokenizer, join(written.llamaDir, 'tokenizer.model'));
    const genMs = performance.now() - t0;
    timings.push(['write checkpoints', genMs, process.resourceUsage().maxRSS * 1024]);
    for (const f of written.files) {
      console.log(
        `  ${relative(workDir, f.path)}: ${fmtBytes(f.bytes)} (${f.bytes} bytes, ${f.tensors} tensors)`,
      );
    }
    const inputBytes = written.files.reduce((n, f) => n + f.bytes, 0);
    console.log(
      `  ${fmtBytes(inputBytes)} in ${fmtSeconds(genMs)} (${(inputBytes / MiB / (genMs / 1000)).toFixed(0)} MiB/s)`,
    );

    // 2. build
    console.log('\n[2/3] ibllm models build --external-data auto');
    const repo = join(workDir, 'repo');
    const build = await runNode(
      'build',
      [
        cli,
        'models',
        'build',
        '--llama-dir',
        written.llamaDir,
        '--llama-type',
        written.llamaType,
        '--adapter',
        written.adapter,
        '--out',
        repo,
        '--external-data',
        'auto',
      ],
      workDir,
    );
    timings.push(['models build', build.wallMs, build.maxRss]);
    const outputs = filesUnder(repo);
    for (const f of outputs)
      console.log(`  ${relative(repo, f.path)}: ${fmtBytes(f.bytes)} (${f.bytes} bytes)`);
    const decoderData = join(repo, 'llama-decoder', '1', 'model.onnx.data');
    if (!existsSync(decoderData))
      fail(`${decoderData} does not exist: the decoder did not use external data`);
    const decoderDataBytes = statSync(decoderData).size;
    if (decoderDataBytes <= 2 * GiB) fail(`${decoderData} is ${fmtBytes(decoderDataBytes)}, not past 2 GiB`);
    const decoderProto = statSync(join(repo, 'llama-decoder', '1', 'model.onnx')).size;
    console.log(
      `  ok: decoder weights in external data, ${fmtBytes(decoderDataBytes)} > 2 GiB (model.onnx itself ${fmtBytes(decoderProto)})`,
    );
    console.log('  build phases (wall time, largest RSS sampled while the phase ran):');
    build.phases.forEach((p, i) => {
      const end = build.phases[i + 1]?.at ?? build.wallMs;
      console.log(`    ${fmtSeconds(end - p.at).padStart(8)}  ${fmtBytes(p.maxRss).padStart(10)}  ${p.name}`);
    });

    // 3. one greedy decode step
    console.log('\n[3/3] ibllm generate (greedy, 2 new tokens, cache off)');
    const embedding = join(workDir, 'embedding.npy');
    const q = new Float32Array(OPTIONS.bindIn);
    let state = OPTIONS.seed >>> 0 || 1;
    for (let i = 0; i < q.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      q[i] = ((state >>> 0) / 2 ** 32 - 0.5) / 8;
    }
    writeNpy(embedding, float32Tensor(q, [OPTIONS.bindIn]));
    const gen = await runNode(
      'generate',
      [
        cli,
        'generate',
        '--models',
        repo,
        '--embedding',
        embedding,
        '--prompt',
        'hi',
        '--temperature',
        '0',
        '--max-new-tokens',
        '2',
        '--cache',
        'off',
        '--json',
      ],
      workDir,
    );
    timings.push(['generate (load + decode)', gen.wallMs, gen.maxRss]);
    let answer;
    try {
      answer = JSON.parse(gen.stdout.trim().split('\n').at(-1) ?? '');
    } catch {
      fail(`generate printed no JSON result: ${JSON.stringify(gen.stdout.slice(0, 500))}`);
    }
    if (!Array.isArray(answer.generated_ids) || answer.generated_ids.length === 0) {
      fail(`generate produced no tokens: ${JSON.stringify(answer)}`);
    }
    console.log(
      `  ok: prompt ids ${JSON.stringify(answer.prompt_ids)}, generated ids ${JSON.stringify(answer.generated_ids)} ` +
        `(${answer.finish_reason}), text ${JSON.stringify(answer.text)}, first token after ${answer.time_to_first_token_ms} ms`,
    );

    console.log('\nsummary');
    console.log('  files written:');
    for (const f of [...written.files.map((w) => ({ path: w.path, bytes: w.bytes })), ...outputs]) {
      console.log(`    ${fmtBytes(f.bytes).padStart(10)}  ${relative(workDir, f.path)}`);
    }
    console.log('  phases (wall time, peak RSS of the process that ran it):');
    for (const [name, ms, rss] of timings) {
      console.log(
        `    ${fmtSeconds(ms).padStart(8)}  ${rss === undefined ? 'n/a' : fmtBytes(rss).padStart(10)}  ${name}`,
      );
    }
  } finally {
    if (args.keep) console.log(`\nkept ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(
    `fullsize-build: ${error instanceof Failure ? error.message : (error?.stack ?? String(error))}`,
  );
  process.exitCode = 1;
});
