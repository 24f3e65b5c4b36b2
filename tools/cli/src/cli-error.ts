import { describeLimit, inLimit, type LimitRange } from '@imagebind-llm/domain';

/** An error the CLI reports as one line and exit status 2 (bad usage) or 1 (failure). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

export function requireString(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new CliError(`--${name} is required`);
  return v;
}

export function optionalNumber(
  values: Record<string, unknown>,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new CliError(`--${name} must be a number in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return n;
}

/** A numeric option within one of the shared ranges (libs/domain generation.ts). */
export function optionalInRange(
  values: Record<string, unknown>,
  name: string,
  range: LimitRange,
): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
  if (!inLimit(n, range)) {
    throw new CliError(`--${name} must be ${describeLimit(range)}, got ${JSON.stringify(v)}`);
  }
  return n;
}

export function optionalInt(
  values: Record<string, unknown>,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const n = optionalNumber(values, name, min, max);
  if (n !== undefined && !Number.isInteger(n)) throw new CliError(`--${name} must be an integer, got ${n}`);
  return n;
}
