#!/usr/bin/env node
// Regenerates libs/proto from proto/ with buf + ts-proto, and the descriptor set used by server
// reflection. With --check it generates into a temporary folder and fails (exit 1) when the
// committed files differ, listing each stale file: CI runs it so generated code never drifts.
import { execFileSync } from 'node:child_process';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  mkdirSync,
  cpSync,
  existsSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const buf = join(root, 'node_modules', '.bin', 'buf');
const check = process.argv.includes('--check');
const targets = [
  { committed: 'libs/proto/src/generated', kind: 'dir' },
  { committed: 'libs/proto/descriptors/imagebind.binpb', kind: 'file' },
];

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out;
}

const scratch = mkdtempSync(join(tmpdir(), 'ibllm-codegen-'));
try {
  // buf.gen.yaml writes to libs/proto/src/generated relative to the working directory, so run it
  // from the scratch folder with the module path pointing back at the repository.
  mkdirSync(join(scratch, 'node_modules', '.bin'), { recursive: true });
  cpSync(
    join(root, 'node_modules', '.bin', 'protoc-gen-ts_proto'),
    join(scratch, 'node_modules', '.bin', 'protoc-gen-ts_proto'),
    { dereference: false, verbatimSymlinks: false },
  );
  execFileSync(buf, ['generate', join(root, 'proto'), '--template', join(root, 'proto', 'buf.gen.yaml')], {
    cwd: scratch,
    stdio: 'inherit',
  });
  const descOut = join(scratch, 'libs/proto/descriptors/imagebind.binpb');
  mkdirSync(dirname(descOut), { recursive: true });
  execFileSync(buf, ['build', join(root, 'proto'), '-o', descOut], { stdio: 'inherit' });

  if (check) {
    const stale = [];
    for (const t of targets) {
      const fresh = join(scratch, t.committed);
      const have = join(root, t.committed);
      const freshFiles = t.kind === 'dir' ? listFiles(fresh).map((f) => relative(fresh, f)) : [''];
      const haveFiles = t.kind === 'dir' ? listFiles(have).map((f) => relative(have, f)) : [''];
      for (const f of new Set([...freshFiles, ...haveFiles])) {
        const a = join(fresh, f);
        const b = join(have, f);
        if (!existsSync(a) || !existsSync(b) || !readFileSync(a).equals(readFileSync(b))) {
          stale.push(join(t.committed, f));
        }
      }
    }
    if (stale.length > 0) {
      console.error(
        `generated code is stale; run \`npm run proto:generate\` and commit:\n  ${stale.join('\n  ')}`,
      );
      process.exit(1);
    }
    console.log('proto codegen: committed files match a fresh generation');
  } else {
    for (const t of targets) {
      rmSync(join(root, t.committed), { recursive: true, force: true });
      mkdirSync(dirname(join(root, t.committed)), { recursive: true });
      cpSync(join(scratch, t.committed), join(root, t.committed), { recursive: true });
    }
    console.log('proto codegen: libs/proto regenerated');
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
