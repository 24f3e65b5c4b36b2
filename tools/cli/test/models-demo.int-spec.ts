// `ibllm models demo` makes a complete repository from the project's own random-weight
// checkpoints in the official formats — no downloads, no shared files — and every command runs on it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = join(__dirname, '..', 'bin', 'ibllm.js');
const ibllm = (args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ibllm-demo-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('ibllm models demo', () => {
  it('builds every component and says the weights are random', () => {
    const r = ibllm([
      'models',
      'demo',
      '--out',
      join(work, 'repo'),
      '--seed',
      '7',
      '--keep-checkpoints',
      join(work, 'ckpt'),
    ]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/random weights/i);
    for (const c of [
      'imagebind-vision',
      'imagebind-audio',
      'imagebind-text',
      'imagebind-point',
      'bind',
      'llama-decoder',
      'tokenizer',
      'knn-cache',
    ]) {
      expect(existsSync(join(work, 'repo', c, '1', 'model.json')), c).toBe(true);
    }
    // the checkpoints are the official formats: the normal build reads them too
    for (const f of [
      'imagebind_w3D.pth',
      '7B.pth',
      'knn.index',
      'llama/tokenizer.model',
      'llama/7B/consolidated.00.pth',
    ]) {
      expect(existsSync(join(work, 'ckpt', f)), f).toBe(true);
    }
    const sources = (
      JSON.parse(readFileSync(join(work, 'repo', 'llama-decoder', '1', 'model.json'), 'utf8')) as {
        sources: { file: string }[];
      }
    ).sources;
    expect(sources.map((s) => s.file)).toContain('7B.pth');
  });

  it('answers from raw inputs on the demo repository, reproducibly for a seed', () => {
    const args = [
      'generate',
      '--models',
      join(work, 'repo'),
      '--text',
      'a dog on a beach',
      '--prompt',
      'Describe it.',
      '--max-new-tokens',
      '6',
      '--seed',
      '3',
      '--json',
    ];
    const a = ibllm(args);
    expect(a.status).toBe(0);
    const first = JSON.parse(a.stdout) as { generated_ids: number[] };
    expect(first.generated_ids).toHaveLength(6);
    expect((JSON.parse(ibllm(args).stdout) as { generated_ids: number[] }).generated_ids).toEqual(
      first.generated_ids,
    );
  });

  it('writes the same checkpoints for the same seed', () => {
    const r = ibllm([
      'models',
      'demo',
      '--out',
      join(work, 'repo2'),
      '--seed',
      '7',
      '--keep-checkpoints',
      join(work, 'ckpt2'),
    ]);
    expect(r.status).toBe(0);
    expect(
      readFileSync(join(work, 'ckpt2', '7B.pth')).equals(readFileSync(join(work, 'ckpt', '7B.pth'))),
    ).toBe(true);
  });
});
