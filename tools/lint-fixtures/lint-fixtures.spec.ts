// Proves the architecture rules are enforced, not just written down: each fixture under boundary/
// breaks one rule and lint must reject it with that rule; the control file must pass.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ESLint } from 'eslint';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');
const fixture = (p: string): string => join(__dirname, 'boundary', p);

describe('lint fixtures', () => {
  let results: Map<string, ESLint.LintResult>;

  beforeAll(async () => {
    process.env['NX_DAEMON'] = 'false';
    // The boundaries rule reads Nx's cached project graph and silently skips itself when there is
    // none; computing the graph first makes the rule run on the current files.
    execFileSync(join(root, 'node_modules', '.bin', 'nx'), ['show', 'projects'], {
      cwd: root,
      env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' },
      stdio: 'ignore',
    });
    // ignore: false lints the fixtures that the normal run skips; the config is the real one.
    const eslint = new ESLint({ cwd: root, ignore: false });
    const linted = await eslint.lintFiles([join(__dirname, 'boundary')]);
    results = new Map(linted.map((r) => [r.filePath, r]));
  }, 120_000);

  const rulesOf = (file: string): string[] =>
    (results.get(fixture(file))?.messages ?? []).map((m) => `${m.ruleId ?? 'fatal'}: ${m.message}`);

  it('rejects a service importing another service', () => {
    expect(rulesOf('service-b/src/imports-another-service.ts')).toContain(
      '@nx/enforce-module-boundaries: A project tagged with "type:service" can only depend on libs tagged with "type:lib"',
    );
  });

  it('rejects onnxruntime-node outside libs/inference', () => {
    expect(rulesOf('plain-lib/src/imports-onnxruntime.ts')).toContain(
      '@nx/enforce-module-boundaries: A project tagged with "adapter:none" is not allowed to import "onnxruntime-node"',
    );
  });

  it('rejects the test-only library in production code', () => {
    expect(rulesOf('plain-lib/src/imports-testing.ts')).toContain(
      '@nx/enforce-module-boundaries: A project tagged with "type:lib" can only depend on libs tagged with "type:lib"',
    );
  });

  it('rejects a floating promise (type-aware async rules are on)', () => {
    expect(
      rulesOf('plain-lib/src/floating-promise.ts').some((m) =>
        m.startsWith('@typescript-eslint/no-floating-promises'),
      ),
    ).toBe(true);
  });

  it('accepts a service importing a lib (the rules are not simply rejecting everything)', () => {
    expect(results.has(fixture('service-b/src/imports-a-lib.ts'))).toBe(true);
    expect(rulesOf('service-b/src/imports-a-lib.ts')).toEqual([]);
  });
});
