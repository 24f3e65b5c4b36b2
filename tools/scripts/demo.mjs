#!/usr/bin/env node
// `npm run demo`: the main job on one machine, in process — build a model repository from the
// official-format checkpoints (the tiny random-weight golden set in ../shared/golden/tiny-a, or
// the folder given with --golden), then answer the official demo question about the official
// example image + audio. The weights are random, so the answer is meaningless text by design;
// every number in it matches the official PyTorch implementation (see tools/cli/test).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: {
    golden: { type: 'string', default: resolve(root, '..', 'shared', 'golden', 'tiny-a') },
    models: { type: 'string', default: join(root, '.models', 'golden-tiny-a') },
    rebuild: { type: 'boolean', default: false },
  },
});
const g = values.golden;
const cli = join(root, 'tools', 'cli', 'bin', 'ibllm.js');
const run = (args) => {
  const r = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
if (!existsSync(join(g, 'manifest.json'))) {
  // No golden set on this machine: use the project's own random-weight demo checkpoints.
  const repo = join(root, '.models', 'demo');
  console.error(`no golden checkpoints in ${g}; building the demo repository with ibllm models demo`);
  if (values.rebuild || !existsSync(join(repo, 'llama-decoder'))) run(['models', 'demo', '--out', repo]);
  run([
    'generate',
    '--models',
    repo,
    '--text',
    'A dog playing on the beach.',
    '--prompt',
    'Describe the scene.',
    '--temperature',
    '0',
    '--max-new-tokens',
    '24',
  ]);
  process.exit(0);
}
if (values.rebuild || !existsSync(join(values.models, 'llama-decoder'))) {
  console.error(`building the model repository in ${values.models} ...`);
  run([
    'models',
    'build',
    '--imagebind',
    join(g, 'imagebind_w3D.pth'),
    '--imagebind-config',
    join(g, 'imagebind_config.json'),
    '--llama-dir',
    join(g, 'llama'),
    '--adapter',
    join(g, '7B.pth'),
    '--knn',
    join(g, 'knn.index'),
    '--out',
    values.models,
  ]);
}
const question = "Guess the girl's mood based on the background music and explain the reason?";
console.error(
  `\nQ: ${question}\n   inputs: girl.jpg (weight 1) + girl_bgm.wav (weight 1), visual cache on, greedy, 24 tokens\nA: (random demo weights: meaningless text, official numerics)`,
);
run([
  'generate',
  '--models',
  values.models,
  '--image',
  join(g, 'inputs', 'girl.jpg'),
  '--audio',
  join(g, 'inputs', 'girl_bgm.wav'),
  '--prompt',
  question,
  '--temperature',
  '0',
  '--max-new-tokens',
  '24',
]);
