import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * The golden reference data made by the official implementation (`shared/golden`, beside the
 * repository). `IBLLM_GOLDEN_DIR` overrides the location. A missing folder is an error, never a
 * reason to skip: parity tests are how we know the model is right.
 */
export function goldenDir(set = 'tiny-a'): string {
  const base =
    process.env['IBLLM_GOLDEN_DIR'] ?? resolve(__dirname, '..', '..', '..', '..', 'shared', 'golden');
  const dir = join(base, set);
  if (!existsSync(join(dir, 'manifest.json'))) {
    throw new Error(
      `golden data not found at ${dir}; put shared/ beside the repository or set IBLLM_GOLDEN_DIR`,
    );
  }
  return dir;
}

/** A file inside the golden set. */
export function goldenPath(...parts: string[]): string {
  return join(goldenDir(), ...parts);
}

/** One case of a golden set's manifest.json (`preprocess/…`, `embed/…`, `fusion/…`, `decode/…`). */
export interface GoldenCase {
  readonly id: string;
  readonly kind: string;
  /** Output name → file (relative to the set) with its shape and dtype. */
  readonly outputs: Readonly<Record<string, { readonly file: string; readonly shape?: readonly number[] }>>;
  readonly [field: string]: unknown;
}

/** The case `id` of the golden set's manifest; an unknown id is an error, never a skip. */
export function goldenCase(id: string, set = 'tiny-a'): GoldenCase {
  const manifest = JSON.parse(readFileSync(join(goldenDir(set), 'manifest.json'), 'utf8')) as {
    cases: GoldenCase[];
  };
  const found = manifest.cases.find((c) => c.id === id);
  if (found === undefined) throw new Error(`golden set ${set} has no case ${id}`);
  return found;
}
