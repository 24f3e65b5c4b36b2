import { ConfigError, parseEnv, type EnvOf, type EnvSchema } from './env-schema';

/** Exit status a process uses when its configuration is invalid (EX_CONFIG from sysexits.h). */
export const EXIT_CONFIG = 78;

/**
 * Loads a service's configuration at boot. On failure it writes one line to stderr that names
 * every bad variable and what to set, then exits with EXIT_CONFIG: a misconfigured pod must fail
 * fast and visibly rather than start half-working.
 */
export function loadConfigOrExit<S extends EnvSchema>(
  service: string,
  schema: S,
  source: Readonly<Record<string, string | undefined>> = process.env,
): EnvOf<S> {
  try {
    return parseEnv(service, schema, source);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw error;
  }
}
