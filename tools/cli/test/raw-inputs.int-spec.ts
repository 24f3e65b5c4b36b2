// End to end from the raw example files, as a user runs it: `ibllm models build` with the
// ImageBind checkpoint, `ibllm embed`, then `ibllm generate` on image + audio and on a point
// cloud — tokens must equal the official greedy answers of the golden set.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { goldenBuildArgs, goldenDir, l2Norm, relativeError } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = join(__dirname, '..', 'bin', 'ibllm.js');
const g = goldenDir();
const manifest = JSON.parse(readFileSync(join(g, 'manifest.json'), 'utf8')) as {
  cases: { id: string; generated_ids?: number[]; instruction?: string; text_stripped?: string }[];
};
const decodeCase = (id: string) => manifest.cases.find((c) => c.id === id)!;
const input = (name: string): string => join(g, 'inputs', name);
const load = (p: string): Float32Array => toFloat32(readNpy(p));
// ‖ours − official‖₂/‖official‖₂ of each embedding from the raw file, and the same for its norm
// (the logit scale: 19.8 audio, 14.6 text). Measured ≤ 6.2e-7 for every modality (the preprocessed
// tensors match the official ones to float32 rounding), the same as the graphs on the stored
// tensors; 1e-5 is the bound the encoder parity tests hold. The fused queries (including the raw
// video, 3.3e-7, and the raw text "A dog.") keep the 1e-5 they had.
const RAW_EMBED_REL_TOL = 1e-5;

function ibllm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 180_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let work: string;
let repo: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ibllm-raw-'));
  repo = join(work, 'repo');
  const r = ibllm(['models', 'build', ...goldenBuildArgs(repo)]);
  expect(r.stderr).toContain('wrote imagebind-point');
  expect(r.status).toBe(0);
}, 180_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('ibllm embed on the raw example files', () => {
  it('gives the official embeddings (relative error and norm) and fusion (rel. error ≤ 1e-5)', () => {
    const dump = join(work, 'embed');
    const r = ibllm([
      'embed',
      '--models',
      repo,
      '--image',
      input('girl.jpg'),
      '--audio',
      input('girl_bgm.wav'),
      '--text',
      'A dog.',
      '--point',
      input('airplane.pt'),
      '--dump',
      dump,
    ]);
    expect(r.status).toBe(0);
    const pairs: [string, string][] = [
      ['image', 'girl'],
      ['audio', 'girl_bgm'],
      ['text', 'a_dog'],
      ['point', 'airplane'],
    ];
    for (const [mine, theirs] of pairs) {
      const got = load(join(dump, `embedding.${mine}.npy`));
      const want = load(join(g, 'expected', 'embed', `${theirs}.npy`));
      const error = relativeError(got, want);
      const normError = Math.abs(l2Norm(got) - l2Norm(want)) / l2Norm(want);
      console.log(`raw ${mine}: rel. error ${error.toExponential(2)}, norm ${normError.toExponential(2)}`);
      expect(error, mine).toBeLessThanOrEqual(RAW_EMBED_REL_TOL);
      expect(normError, `${mine} norm`).toBeLessThanOrEqual(RAW_EMBED_REL_TOL);
    }
    expect(r.stdout).toMatch(/cos\(image, audio\) = 0\.0080/);
    // The point cloud's FPS centres and kNN groups, in the golden files' layout: int64 [512] and int32
    // [512, 32] with sorted rows. Byte-identical files mean the same indices, dtype and shape.
    for (const [mine, theirs] of [
      ['fps_idx.point.npy', 'airplane.fps_idx.npy'],
      ['groups.point.npy', 'airplane.groups.npy'],
    ] as const) {
      const got = readNpy(join(dump, mine));
      const want = readNpy(join(g, 'expected', 'embed', theirs));
      expect([got.dtype, got.shape], mine).toEqual([want.dtype, want.shape]);
      expect(Buffer.from(got.data).equals(Buffer.from(want.data)), mine).toBe(true);
    }
  });

  it.each([
    ['image+audio_w1-1_knn-off', ['--image', 'girl.jpg', '--audio', 'girl_bgm.wav']],
    [
      'image+audio_w0.7-0.3_knn-off',
      ['--image', 'girl.jpg', '--audio', 'girl_bgm.wav', '--weight', 'image=0.7', '--weight', 'audio=0.3'],
    ],
    ['point_knn-off', ['--point', 'airplane.pt']],
    ['video_knn-off', ['--video', 'landscape_320x240_10fps_5.3s.mp4']],
    ['point-perm_knn-on', ['--point', 'airplane_perm.npy']],
    ['text_knn-off', ['--text', 'A dog.']],
  ])('fuses %s like the official code', (fusionCase, args) => {
    const dump = join(work, `fuse-${fusionCase}`);
    // file arguments become paths under inputs/; weights and raw text stay as they are
    const resolved = args.map((a, i) =>
      i > 0 && args[i - 1]!.startsWith('--') && !['--weight', '--text'].includes(args[i - 1]!) ? input(a) : a,
    );
    const r = ibllm(['embed', '--models', repo, ...resolved, '--dump', dump]);
    expect(r.status).toBe(0);
    const error = relativeError(
      load(join(dump, 'fused.npy')),
      load(join(g, 'expected', 'fusion', fusionCase, 'q.npy')),
    );
    console.log(`raw fusion ${fusionCase}: rel. error ${error.toExponential(2)}`);
    expect(error).toBeLessThanOrEqual(1e-5);
  });
});

describe("npm run demo (the README's first command after set-up)", () => {
  it('runs the platform in one process and answers the demo question with the official tokens, over gRPC and REST', () => {
    const c = decodeCase('decode/demo_image+audio_knn-on');
    const script = join(__dirname, '..', '..', 'scripts', 'demo.mjs');
    const r = spawnSync(process.execPath, [script, '--models', join(work, 'demo-models')], {
      encoding: 'utf8',
      timeout: 180_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('building the model repository');
    expect(r.stderr).toMatch(
      /ready: gRPC 127\.0\.0\.1:\d+, HTTP http:\/\/127\.0\.0\.1:\d+ \(mode standalone\)/,
    );
    expect(r.stderr).toMatch(/\[24 tokens, first token after \d+ ms/);
    expect(r.stderr).toContain('same answer as gRPC: yes');
    expect(r.stderr).toContain('server stopped (exit 0)');
    // stdout: the gRPC answer, then the REST answer; both are the official greedy text.
    const [grpcAnswer, restAnswer] = r.stdout.split('\n');
    expect(grpcAnswer!.trim()).toBe(c.text_stripped);
    expect(restAnswer!.trim()).toBe(c.text_stripped);
  });
});

describe('ibllm generate on the raw example files', () => {
  it('answers the demo (girl.jpg + girl_bgm.wav) with the official greedy tokens', () => {
    const c = decodeCase('decode/demo_image+audio_knn-on');
    const r = ibllm([
      'generate',
      '--models',
      repo,
      '--image',
      input('girl.jpg'),
      '--audio',
      input('girl_bgm.wav'),
      '--prompt',
      c.instruction!,
      '--temperature',
      '0',
      '--max-new-tokens',
      '24',
      '--json',
    ]);
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as { generated_ids: number[] }).generated_ids).toEqual(c.generated_ids);
  });

  it('answers the 3D demo (airplane.pt) with the official greedy tokens', () => {
    const c = decodeCase('decode/demo3d_point_knn-on');
    const r = ibllm([
      'generate',
      '--models',
      repo,
      '--point',
      input('airplane.pt'),
      '--prompt',
      c.instruction!,
      '--temperature',
      '0',
      '--max-new-tokens',
      '24',
      '--json',
    ]);
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as { generated_ids: number[] }).generated_ids).toEqual(c.generated_ids);
  });

  it.each([
    [['--image', '/nonexistent.jpg'], /--image \/nonexistent\.jpg: ENOENT/],
    [['--weight', 'image=0', '--image', 'x'], /the weight must be a positive number/],
    [['--weight', 'smell=1'], /MODALITY one of image, video, audio, text, point/],
  ])('refuses %j with a one-line reason', (args, message) => {
    const r = ibllm(['generate', '--models', repo, '--prompt', 'x', ...args]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });

  it('refuses a corrupt image as invalid input, naming the problem', () => {
    const r = ibllm([
      'generate',
      '--models',
      repo,
      '--prompt',
      'x',
      '--image',
      join(g, 'inputs', 'girl_bgm.wav'),
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^ibllm: .*(image|format|WAV|RIFF)/i);
  });
});
