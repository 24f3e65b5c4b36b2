// `--help` and `--version` as a user types them: every command and subcommand answers with its
// own usage on stdout and exit 0.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = join(__dirname, '..', 'bin', 'ibllm.js');

function ibllm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('ibllm --help', () => {
  it.each([
    [['--help'], 'ibllm — ImageBind-LLM from the command line'],
    [['models', '--help'], 'ibllm models build'],
    [['models', 'build', '--help'], 'ibllm models build'],
    [['models', 'demo', '-h'], 'ibllm models demo'],
    [['embed', '--help'], 'ibllm embed'],
    [['generate', '--help'], 'ibllm generate'],
    [['serve', '--help'], 'ibllm serve'],
    [['batch', '--help'], 'ibllm batch submit'],
    [['batch', 'submit', '--help'], 'ibllm batch submit'],
    [['batch', 'status', 'job-1', '--help'], 'ibllm batch status'],
    [['batch', 'results', '--help'], 'ibllm batch results'],
    [['batch', 'cancel', '--help'], 'ibllm batch cancel'],
    [['batch', 'list', '--help'], 'ibllm batch list'],
  ])('%j prints its usage and exits 0', (args, first) => {
    const r = ibllm(args);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.startsWith(first)).toBe(true);
  });

  it('shows one batch subcommand, not all of batch', () => {
    const r = ibllm(['batch', 'status', '--help']);
    expect(r.stdout).toContain('status  state and progress');
    expect(r.stdout).toContain('--gateway HOST:PORT');
    expect(r.stdout).not.toContain('submit  --manifest');
    expect(r.stdout).not.toContain('ibllm batch results');
  });

  it('models build --help does not describe models demo', () => {
    expect(ibllm(['models', 'build', '--help']).stdout).not.toContain('ibllm models demo');
  });
});

describe('ibllm --version', () => {
  it('prints the CLI package version', () => {
    const version = (
      JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }
    ).version;
    for (const flag of ['--version', '-V']) {
      const r = ibllm([flag]);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`ibllm ${version} (node ${process.versions.node})\n`);
    }
  });

  it('a bare `ibllm models` names its subcommands and exits 2', () => {
    const r = ibllm(['models']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'ibllm: `ibllm models` needs a subcommand: build or demo (try `ibllm models --help`)\n',
    );
  });
});

describe('a --models path that is not a repository', () => {
  it.each([['embed'], ['generate']])(
    '%s names the missing folder instead of a missing component',
    (command) => {
      const args = [command, '--models', '/nonexistent-ibllm-repo', '--text', 'a dog'];
      if (command === 'generate') args.push('--prompt', 'What is it?');
      const r = ibllm(args);
      expect(r.status).toBe(2);
      expect(r.stderr).toBe(
        'ibllm: model repository /nonexistent-ibllm-repo does not exist: give the folder that ' +
          '`ibllm models build ... --out DIR` or `ibllm models demo --out DIR` wrote\n',
      );
    },
  );

  it('refuses a file given as the repository', () => {
    const r = ibllm(['embed', '--models', BIN, '--text', 'a dog']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`model repository ${BIN} is a file, not a folder`);
  });
});
