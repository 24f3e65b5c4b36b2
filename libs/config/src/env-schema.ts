import { z } from 'zod';

/**
 * One environment variable: its zod schema plus the documentation shown when it is wrong.
 * Every tunable has a default (or is explicitly required), an env name and a doc comment.
 */
export interface EnvVar<T extends z.ZodType = z.ZodType> {
  readonly schema: T;
  readonly doc: string;
}

export type EnvSchema = Record<string, EnvVar>;

export type EnvOf<S extends EnvSchema> = { readonly [K in keyof S]: z.output<S[K]['schema']> };

export function envVar<T extends z.ZodType>(schema: T, doc: string): EnvVar<T> {
  return { schema, doc };
}

/** Thrown when the environment does not satisfy a schema; its message is one line per problem. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly service: string,
    readonly problems: readonly string[],
  ) {
    super(`invalid configuration for ${service}: ${problems.join('; ')}`);
  }
}

/** Common value types, coerced from strings the way operators write them. */
export const env = {
  port: (fallback: number) =>
    z.coerce
      .number({ error: 'must be a port number' })
      .int('must be an integer')
      .min(0, 'must be 0..65535 (0 picks a free port)')
      .max(65535, 'must be 0..65535 (0 picks a free port)')
      .default(fallback),
  positiveInt: (fallback: number, max = Number.MAX_SAFE_INTEGER) =>
    z.coerce
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .min(1, 'must be at least 1')
      .max(max, `must be at most ${max}`)
      .default(fallback),
  host: (fallback: string) =>
    z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .regex(/^[A-Za-z0-9.:[\]-]+$/, 'must be a host name or IP address')
      .default(fallback),
  boolean: (fallback: boolean) =>
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
      .transform((v) => v === 'true' || v === '1' || v === 'yes')
      .default(fallback),
  logLevel: () =>
    z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
        error: 'must be one of fatal, error, warn, info, debug, trace, silent',
      })
      .default('info'),
  nonNegativeInt: (fallback: number, max = Number.MAX_SAFE_INTEGER) =>
    z.coerce
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .min(0, 'must be at least 0')
      .max(max, `must be at most ${max}`)
      .default(fallback),
  /** A number in [0, 1] (a share of something). */
  fraction: (fallback: number) =>
    z.coerce
      .number({ error: 'must be a number' })
      .min(0, 'must be at least 0')
      .max(1, 'must be at most 1')
      .default(fallback),
  /** A string that must be set; `hint` says what to put there. */
  requiredString: (hint: string) =>
    z
      .string({ error: `must be set: ${hint}` })
      .trim()
      .min(1, `must be set: ${hint}`),
  stringWithDefault: (fallback: string) => z.string().trim().min(1, 'must not be empty').default(fallback),
  optionalString: () =>
    z
      .string()
      .trim()
      .optional()
      .transform((v) => (v === '' ? undefined : v)),
  /** An http(s) URL, or unset / empty for none. */
  optionalHttpUrl: () =>
    z
      .string()
      .trim()
      .optional()
      .transform((v) => (v === '' ? undefined : v))
      .refine((v) => v === undefined || /^https?:\/\/[^\s/]+/.test(v), {
        message: 'must be an http:// or https:// URL (e.g. http://otel-collector:4318), or empty',
      }),
};

/**
 * Validates `source` (normally process.env) against a schema. Unknown variables are ignored;
 * every problem is reported at once, each naming the variable and what to set it to.
 */
export function parseEnv<S extends EnvSchema>(
  service: string,
  schema: S,
  source: Readonly<Record<string, string | undefined>>,
): EnvOf<S> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(schema)) {
    const raw = source[name];
    const result = spec.schema.safeParse(raw === '' ? undefined : raw);
    if (result.success) {
      out[name] = result.data;
    } else {
      const reason = result.error.issues.map((i) => i.message).join(', ');
      const shown = raw === undefined ? 'unset' : JSON.stringify(raw);
      problems.push(`${name} is ${shown}: ${reason} (${spec.doc})`);
    }
  }
  if (problems.length > 0) throw new ConfigError(service, problems);
  return out as EnvOf<S>;
}

/** Markdown table of a schema, for docs and `--help`. */
export function describeEnv(schema: EnvSchema): string {
  const rows = Object.entries(schema).map(([name, spec]) => {
    const parsed = spec.schema.safeParse(undefined);
    const fallback = parsed.success ? (JSON.stringify(parsed.data) ?? '(none)') : '(required)';
    return `| \`${name}\` | ${fallback} | ${spec.doc} |`;
  });
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
}
