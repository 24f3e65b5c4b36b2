#!/usr/bin/env node
// Builds libs/preprocess/native/build/ibllm_media.node with the system C compiler: JPEG decoding
// (libjpeg-turbo) and the Pillow resample loops always, FFmpeg's libraries in process when their
// headers are installed. No node-gyp: one `cc` call against Node's own headers (node_api.h).
//
//   node libs/preprocess/native/build.mjs            # `npm run build` runs this first
//
// What it needs (Debian): gcc, libjpeg62-turbo-dev, and for video libavformat-dev libavcodec-dev
// libswscale-dev libavutil-dev pkg-config. Without a compiler or libjpeg headers it prints why
// and exits 0: preprocessing then runs on sharp and the ffmpeg command line (same tensors,
// slower); IBLLM_NATIVE_REQUIRED=1 (set by CI) makes that an error instead. IBLLM_NATIVE=off
// removes a built module and builds none: the portable path everywhere.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'build', 'ibllm_media.node');
const required = process.env.IBLLM_NATIVE_REQUIRED === '1';
const sources = ['module.c', 'napi-util.c', 'image.c', 'video-tensor.c', 'point.c'];

function give(reason) {
  const fix =
    'install: apt-get install gcc libjpeg62-turbo-dev libavformat-dev libavcodec-dev libswscale-dev libavutil-dev pkg-config';
  if (required) {
    console.error(`ibllm_media: ${reason}; ${fix} (IBLLM_NATIVE_REQUIRED=1)`);
    process.exit(1);
  }
  console.log(
    `ibllm_media: not built (${reason}); preprocessing uses sharp and the ffmpeg CLI. To build, ${fix}`,
  );
  process.exit(0);
}

if (process.env.IBLLM_NATIVE === 'off') {
  rmSync(out, { force: true });
  console.log('ibllm_media: IBLLM_NATIVE=off, not built (the portable path runs)');
  process.exit(0);
}

// Up to date: newer than every source and this script.
const inputs = [...sources, 'video.c', 'napi-util.h', 'media.h', 'build.mjs'].map((f) => join(here, f));
if (existsSync(out)) {
  const built = statSync(out).mtimeMs;
  if (inputs.every((f) => statSync(f).mtimeMs <= built) && process.env.IBLLM_NATIVE_REBUILD !== '1') {
    process.exit(0);
  }
}

const cc = process.env.CC ?? 'cc';
if (spawnSync(cc, ['--version'], { stdio: 'ignore' }).status !== 0) give(`no C compiler (${cc})`);

// node_api.h: next to the running node (/usr/include/node or <prefix>/include/node).
const include = [resolve(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node'].find((d) =>
  existsSync(join(d, 'node_api.h')),
);
if (include === undefined) give("Node's headers (node_api.h) are not installed next to node");

const probe = (header) =>
  spawnSync(cc, ['-E', '-x', 'c', '-', '-o', '/dev/null'], {
    input: `#include <stddef.h>\n#include <stdio.h>\n#include <${header}>\n`,
    stdio: ['pipe', 'ignore', 'ignore'],
  }).status === 0;
if (!probe('jpeglib.h')) give('libjpeg headers missing (jpeglib.h)');

const flags = [];
const libs = ['-ljpeg', '-lm'];
const pc = spawnSync(
  'pkg-config',
  ['--cflags', '--libs', 'libavformat', 'libavcodec', 'libswscale', 'libavutil'],
  {
    encoding: 'utf8',
  },
);
let video = false;
if (pc.status === 0) {
  video = true;
  sources.push('video.c');
  flags.push('-DIBLLM_WITH_LIBAV');
  for (const f of pc.stdout.trim().split(/\s+/)) (f.startsWith('-l') ? libs : flags).push(f);
} else if (required) {
  give("FFmpeg's development headers missing (pkg-config libavformat libavcodec libswscale libavutil)");
} else {
  console.log(
    'ibllm_media: building without video (FFmpeg development headers missing); video uses the ffmpeg CLI',
  );
}

mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
// -ffp-contract=off: no fused multiply-adds (the float results must equal the TypeScript ones).
const args = [
  '-shared',
  '-fPIC',
  '-O3',
  '-std=c11',
  '-D_GNU_SOURCE',
  '-ffp-contract=off',
  '-fvisibility=hidden',
  '-Wall',
  '-Wextra',
  '-Wno-unused-parameter',
  '-DNODE_GYP_MODULE_NAME=ibllm_media',
  `-I${include}`,
  ...flags,
  ...sources.map((s) => join(here, s)),
  '-o',
  tmp,
  ...libs,
];
const run = spawnSync(cc, args, { stdio: 'inherit' });
if (run.status !== 0) {
  rmSync(tmp, { force: true });
  if (required) process.exit(1);
  give(`the compiler failed (exit ${run.status})`);
}
renameSync(tmp, out);
console.log(`ibllm_media: built ${out} (jpeg + resize + points${video ? ' + video' : ''})`);
