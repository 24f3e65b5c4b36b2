import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { listSupportedBackends } from 'onnxruntime-node';

/** Execution providers the platform knows, in the default order of preference (ARCHITECTURE §5). */
export const KNOWN_PROVIDERS = ['cuda', 'tensorrt', 'webgpu', 'cpu'] as const;
export type ProviderName = (typeof KNOWN_PROVIDERS)[number];

export interface BackendInfo {
  readonly name: string;
  /** True when the provider ships inside onnxruntime-node; false when it needs an extra install. */
  readonly bundled: boolean;
  /** For an unbundled provider: whether its shared library was found next to the binding. */
  readonly installed: boolean;
}

export interface ProviderChoice {
  /** Providers to pass to `InferenceSession.create`, most preferred first; always ends with cpu. */
  readonly providers: ProviderName[];
  /** Preferred providers that were left out, with the reason (logged at start). */
  readonly skipped: { readonly name: string; readonly reason: string }[];
}

/**
 * Filters an ordered preference list down to the providers this machine can run. Unknown names are
 * reported, unbundled providers (cuda, tensorrt) need their library installed (the GPU image
 * installs it; npm's postinstall is disabled here), and cpu is always appended as the fallback.
 */
export function chooseProviders(
  preference: readonly string[],
  backends: readonly BackendInfo[],
): ProviderChoice {
  const providers: ProviderName[] = [];
  const skipped: { name: string; reason: string }[] = [];
  for (const raw of preference) {
    const name = raw.trim().toLowerCase();
    if (name === '') continue;
    if (!(KNOWN_PROVIDERS as readonly string[]).includes(name)) {
      skipped.push({ name, reason: `unknown execution provider; use one of ${KNOWN_PROVIDERS.join(', ')}` });
      continue;
    }
    const backend = backends.find((b) => b.name === name);
    if (backend === undefined) skipped.push({ name, reason: 'not supported by this onnxruntime-node build' });
    else if (!backend.bundled && !backend.installed) {
      skipped.push({
        name,
        reason: 'its provider library is not installed (GPU images install it explicitly)',
      });
    } else if (!providers.includes(name as ProviderName)) providers.push(name as ProviderName);
  }
  if (!providers.includes('cpu')) providers.push('cpu');
  return { providers, skipped };
}

const PROVIDER_LIBRARY: Readonly<Record<string, string>> = {
  cuda: 'libonnxruntime_providers_cuda.so',
  tensorrt: 'libonnxruntime_providers_tensorrt.so',
};

/** What the installed onnxruntime-node offers on this machine. */
export function detectBackends(): BackendInfo[] {
  const bindingDir = join(
    dirname(require.resolve('onnxruntime-node')),
    '..',
    'bin',
    `napi-v6`,
    process.platform,
    process.arch,
  );
  return listSupportedBackends().map((b) => {
    const lib = PROVIDER_LIBRARY[b.name];
    return {
      name: b.name,
      bundled: b.bundled,
      installed: b.bundled || (lib !== undefined && existsSync(join(bindingDir, lib))),
    };
  });
}
