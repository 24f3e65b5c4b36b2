#!/usr/bin/env node
// Builds libs/inference/native/build/ibllm_step_capture.node (step-capture.c) with the system C
// compiler against Node's own headers (node_api.h), no node-gyp: the decoder's step graph under
// onnxruntime's WebGPU graph capture, for DECODER_GRAPH_CAPTURE. It links nothing but libdl: the
// module opens the libonnxruntime.so.1 onnxruntime-node has loaded.
//
//   node libs/inference/native/build.mjs            # `npm run build` runs this
//
// Without a compiler or Node's headers it prints why and exits 0 (decode steps then run without
// capture); IBLLM_NATIVE_REQUIRED=1 (set by CI) makes that an error. IBLLM_NATIVE=off builds none.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'build', 'ibllm_step_capture.node');
const required = process.env.IBLLM_NATIVE_REQUIRED === '1';

function skip(reason) {
  if (required) {
    console.error(`ibllm_step_capture: ${reason} (IBLLM_NATIVE_REQUIRED=1)`);
    process.exit(1);
  }
  console.log(`ibllm_step_capture: not built (${reason}); decode steps run without graph capture`);
  process.exit(0);
}

if (process.env.IBLLM_NATIVE === 'off') {
  rmSync(out, { force: true });
  console.log('ibllm_step_capture: IBLLM_NATIVE=off, not built');
  process.exit(0);
}
const inputs = ['step-capture.c', 'ort-api.h', 'build.mjs'].map((f) => join(here, f));
if (
  existsSync(out) &&
  process.env.IBLLM_NATIVE_REBUILD !== '1' &&
  inputs.every((f) => statSync(f).mtimeMs <= statSync(out).mtimeMs)
)
  process.exit(0);
const cc = process.env.CC ?? 'cc';
if (spawnSync(cc, ['--version'], { stdio: 'ignore' }).status !== 0) skip(`no C compiler (${cc})`);
const include = [resolve(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node'].find((d) =>
  existsSync(join(d, 'node_api.h')),
);
if (include === undefined) skip("Node's headers (node_api.h) are not installed next to node");
mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
const run = spawnSync(
  cc,
  [
    ...['-shared', '-fPIC', '-O2', '-std=c11', '-D_GNU_SOURCE', '-fvisibility=hidden'],
    ...['-Wall', '-Wextra', '-Wno-unused-parameter', '-DNODE_GYP_MODULE_NAME=ibllm_step_capture'],
    `-I${include}`,
    join(here, 'step-capture.c'),
    '-o',
    tmp,
    '-ldl',
  ],
  { stdio: 'inherit' },
);
if (run.status !== 0) {
  rmSync(tmp, { force: true });
  skip('the compiler failed');
}
renameSync(tmp, out);
console.log(`ibllm_step_capture: built ${out}`);
