import { formatShape, type DType, type TensorEntry } from './tensor';

/** `true` allows every key, a list allows those keys, a predicate allows the keys it accepts. */
export type KeyAllowance = boolean | readonly string[] | ((key: string) => boolean);

export interface ValidateStateDictOptions {
  /** Names the checkpoint in the error (a path or a model name). */
  readonly what?: string;
  /**
   * Keys present in the file but not expected; reported unless allowed (LLaMA's `rope.freqs` is
   * ignored by the official non-strict load, MODEL_SPEC §6.1).
   */
  readonly allowUnexpected?: KeyAllowance;
  /** Expected keys allowed to be absent (a partial checkpoint layered over another). */
  readonly allowMissing?: KeyAllowance;
  /** Element types the consumer can convert; others are reported. Default: any. */
  readonly allowedDtypes?: readonly DType[];
}

export interface ShapeMismatch {
  readonly key: string;
  readonly expected: readonly number[];
  readonly actual: readonly number[];
}

export interface StateDictProblems {
  readonly missing: readonly string[];
  readonly unexpected: readonly string[];
  readonly shapeMismatches: readonly ShapeMismatch[];
  readonly unsupportedDtypes: readonly { readonly key: string; readonly dtype: DType }[];
}

/** Everything wrong with a state dict at once, so one failed load shows the whole picture. */
export class StateDictMismatchError extends Error {
  override readonly name = 'StateDictMismatchError';

  constructor(
    readonly source: string,
    readonly problems: StateDictProblems,
  ) {
    super(describeProblems(source, problems));
  }
}

// Thousands of missing keys (a wrong file entirely) would bury the log; the counts stay exact.
const MAX_LISTED = 50;

function listed<T>(items: readonly T[], show: (item: T) => string): string {
  const lines = items.slice(0, MAX_LISTED).map((item) => `    ${show(item)}`);
  if (items.length > MAX_LISTED) lines.push(`    ... and ${items.length - MAX_LISTED} more`);
  return lines.join('\n');
}

function describeProblems(source: string, p: StateDictProblems): string {
  const parts: string[] = [];
  if (p.missing.length > 0)
    parts.push(`  ${p.missing.length} missing key(s):\n${listed(p.missing, (k) => k)}`);
  if (p.unexpected.length > 0) {
    parts.push(`  ${p.unexpected.length} unexpected key(s):\n${listed(p.unexpected, (k) => k)}`);
  }
  if (p.shapeMismatches.length > 0) {
    parts.push(
      `  ${p.shapeMismatches.length} shape mismatch(es):\n${listed(
        p.shapeMismatches,
        (m) => `${m.key}: expected ${formatShape(m.expected)}, found ${formatShape(m.actual)}`,
      )}`,
    );
  }
  if (p.unsupportedDtypes.length > 0) {
    parts.push(
      `  ${p.unsupportedDtypes.length} tensor(s) with an unsupported dtype:\n${listed(
        p.unsupportedDtypes,
        (u) => `${u.key}: ${u.dtype}`,
      )}`,
    );
  }
  return `${source}: state dict does not match the model\n${parts.join('\n')}`;
}

function allows(option: KeyAllowance | undefined, key: string): boolean {
  if (typeof option === 'function') return option(key);
  if (Array.isArray(option)) return (option as readonly string[]).includes(key);
  return option === true;
}

/** Lists what is wrong without throwing. */
export function checkStateDict(
  entries: ReadonlyMap<string, Pick<TensorEntry, 'dtype' | 'shape'>>,
  expected: ReadonlyMap<string, readonly number[]>,
  options: ValidateStateDictOptions = {},
): StateDictProblems {
  const missing: string[] = [];
  const shapeMismatches: ShapeMismatch[] = [];
  const unsupportedDtypes: { key: string; dtype: DType }[] = [];
  for (const [key, shape] of expected) {
    const entry = entries.get(key);
    if (entry === undefined) {
      if (!allows(options.allowMissing, key)) missing.push(key);
      continue;
    }
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      shapeMismatches.push({ key, expected: shape, actual: entry.shape });
    }
    if (options.allowedDtypes !== undefined && !options.allowedDtypes.includes(entry.dtype)) {
      unsupportedDtypes.push({ key, dtype: entry.dtype });
    }
  }
  const unexpected = [...entries.keys()].filter(
    (key) => !expected.has(key) && !allows(options.allowUnexpected, key),
  );
  return { missing, unexpected, shapeMismatches, unsupportedDtypes };
}

/**
 * Throws a {@link StateDictMismatchError} listing every missing key, unexpected key, shape mismatch
 * and unsupported dtype. The official loaders are non-strict and silently keep init values for
 * missing keys (MODEL_SPEC §6.2: a missing gate means no visual signal), so this check is the guard.
 */
export function validateStateDict(
  entries: ReadonlyMap<string, Pick<TensorEntry, 'dtype' | 'shape'>>,
  expected: ReadonlyMap<string, readonly number[]>,
  options: ValidateStateDictOptions = {},
): void {
  const problems = checkStateDict(entries, expected, options);
  const count =
    problems.missing.length +
    problems.unexpected.length +
    problems.shapeMismatches.length +
    problems.unsupportedDtypes.length;
  if (count > 0) throw new StateDictMismatchError(options.what ?? 'checkpoint', problems);
}
