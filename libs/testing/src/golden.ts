import { existsSync } from 'node:fs';
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
