#!/usr/bin/env node
// Builds two modules in libs/preprocess/native/build with the system C compiler, no node-gyp (one
// `cc` call each against Node's own headers, node_api.h):
//   ibllm_media.node     JPEG decoding (libjpeg-turbo), the Pillow resample loops, the video
//                        tensor's float steps, the point grouping (FPS + kNN)
//   ibllm_media_av.node  video and compressed audio probed and decoded in process by FFmpeg's
//                        libraries, when their
//                        headers are installed (a module of its own: a service image without
//                        libav* still loads the first one)
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
const outAv = join(here, 'build', 'ibllm_media_av.node');
const required = process.env.IBLLM_NATIVE_REQUIRED === '1';
const sources = ['module.c', 'napi-util.c', 'image.c', 'video-tensor.c', 'point.c', 'fbank.c', 'resample.c'];
const sourcesAv = ['module-av.c', 'napi-util.c', 'av-util.c', 'video.c', 'audio.c'];

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
  rmSync(outAv, { force: true });
  console.log('ibllm_media: IBLLM_NATIVE=off, not built (the portable path runs)');
  process.exit(0);
}

// Up to date: both built, newer than every source and this script.
const inputs = [
  ...new Set([...sources, ...sourcesAv, 'napi-util.h', 'media.h', 'av-util.h', 'build.mjs']),
].map((f) => join(here, f));
if (existsSync(out) && existsSync(outAv)) {
  const built = Math.min(statSync(out).mtimeMs, statSync(outAv).mtimeMs);
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

const pc = spawnSync(
  'pkg-config',
  ['--cflags', '--libs', 'libavformat', 'libavcodec', 'libswscale', 'libavutil'],
  { encoding: 'utf8' },
);
if (pc.status !== 0 && required) {
  give("FFmpeg's development headers missing (pkg-config libavformat libavcodec libswscale libavutil)");
}

mkdirSync(dirname(out), { recursive: true });

/** One module: compiled to a temporary file, renamed into place; false when the compiler failed. */
function compile(target, files, flags, libs) {
  const tmp = `${target}.${process.pid}.tmp`;
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
    ...files.map((s) => join(here, s)),
    '-o',
    tmp,
    ...libs,
  ];
  const run = spawnSync(cc, args, { stdio: 'inherit' });
  if (run.status !== 0) {
    rmSync(tmp, { force: true });
    if (required) process.exit(1);
    return false;
  }
  renameSync(tmp, target);
  return true;
}

if (!compile(out, sources, [], ['-ljpeg', '-lm'])) give('the compiler failed');
console.log(`ibllm_media: built ${out} (jpeg + resize + video tensor + points + fbank + resample)`);
rmSync(outAv, { force: true });
if (pc.status === 0) {
  const flags = [];
  const libs = [];
  for (const f of pc.stdout.trim().split(/\s+/)) (f.startsWith('-l') ? libs : flags).push(f);
  if (compile(outAv, sourcesAv, flags, libs))
    console.log(`ibllm_media: built ${outAv} (video and audio decoding)`);
  else console.log('ibllm_media: the video module did not compile; video uses the ffmpeg CLI');
} else {
  console.log('ibllm_media: no video module (FFmpeg development headers missing); video uses the ffmpeg CLI');
}
