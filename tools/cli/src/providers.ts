import { executionProvidersFromEnv } from '@imagebind-llm/config';
import { KNOWN_PROVIDERS } from '@imagebind-llm/inference';
import { CliError } from './cli-error';

/** `--providers`, shared by the commands that run models in this process (generate, embed). */
export const PROVIDER_OPTIONS = { providers: { type: 'string' } } as const;

export const PROVIDERS_USAGE = `[--providers LIST]`;

export const PROVIDERS_HELP = `--providers LIST: execution providers in order of preference, comma-separated (${KNOWN_PROVIDERS.join(
  ', ',
)}); default $EXECUTION_PROVIDERS, else cpu. Unavailable ones are skipped with the reason; cpu always ends the list. --json says where each session runs.`;

/** The provider preference: --providers, else $EXECUTION_PROVIDERS, else cpu; unknown names refused. */
export function providerPreference(values: { providers?: string | undefined }): string[] {
  const raw = values.providers ?? executionProvidersFromEnv();
  const names = raw
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter((n) => n !== '');
  const unknown = names.filter((n) => !(KNOWN_PROVIDERS as readonly string[]).includes(n));
  if (unknown.length > 0 || names.length === 0) {
    const from = values.providers === undefined ? 'EXECUTION_PROVIDERS' : '--providers';
    throw new CliError(
      `${from} ${JSON.stringify(raw)}: ${unknown.length > 0 ? `unknown provider ${unknown.join(', ')}` : 'empty'}; use a comma-separated list of ${KNOWN_PROVIDERS.join(', ')}`,
    );
  }
  return names;
}
