// The environment variable names each service really reads, so the chart can be checked against
// them. The shared fragments come from @imagebind-llm/config itself; the service-specific schemas
// are read as source text (a tool may not import a service), taking every `NAME: envVar(` entry and
// expanding the fragments the schema spreads (`...baseServiceEnv(`, `...modelServiceEnv(`...).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  baseServiceEnv,
  batcherEnv,
  embeddedStoreEnv,
  modelRepositoryEnv,
  preprocessEnv,
  tracingEnv,
} from '@imagebind-llm/config';
import { ROOT } from './helm';

const base = Object.keys(baseServiceEnv({ grpcPort: 1, httpPort: 1 }));
const modelRepo = Object.keys(modelRepositoryEnv());
const batcher = Object.keys(batcherEnv({ maxBatch: 1, maxDelayMs: 1, maxQueue: 1 }));
const preprocess = Object.keys(preprocessEnv());
const embeddedStore = Object.keys(embeddedStoreEnv());
const tracing = Object.keys(tracingEnv());

/** Fragments a schema may spread, by the function it calls. */
const FRAGMENTS: Readonly<Record<string, readonly string[]>> = {
  baseServiceEnv: base,
  modelRepositoryEnv: modelRepo,
  batcherEnv: batcher,
  preprocessEnv: preprocess,
  embeddedStoreEnv: embeddedStore,
  tracingEnv: tracing,
  // libs/serving/src/host/model-service-env.schema.ts: base + model repository + batcher.
  modelServiceEnv: [...base, ...modelRepo, ...batcher],
};

/** The env schema source of each component. */
const SCHEMA_FILES: Readonly<Record<string, string>> = {
  gateway: 'services/gateway/src/env.schema.ts',
  decoder: 'libs/serving/src/decoder/host/decoder-env.schema.ts',
  'encoder-vision': 'libs/serving/src/encoder/host/encoder-env.schema.ts',
  'encoder-audio': 'libs/serving/src/encoder/host/encoder-env.schema.ts',
  'encoder-text': 'libs/serving/src/encoder/host/encoder-env.schema.ts',
  'encoder-point': 'libs/serving/src/encoder/host/encoder-env.schema.ts',
  bind: 'libs/serving/src/bind/host/bind-env.schema.ts',
  retriever: 'libs/serving/src/retriever/host/retriever-env.schema.ts',
  'batch-worker': 'services/batch-worker/src/env.schema.ts',
};

export const COMPONENTS = Object.keys(SCHEMA_FILES);

export function envNamesOf(component: string): Set<string> {
  const file = SCHEMA_FILES[component];
  if (file === undefined) throw new Error(`no env schema known for ${component}`);
  const source = readFileSync(join(ROOT, file), 'utf8');
  const names = new Set<string>();
  for (const m of source.matchAll(/^\s+([A-Z][A-Z0-9_]*): envVar\(/gm)) names.add(m[1]!);
  for (const m of source.matchAll(/\.\.\.([a-zA-Z]+)\(/g)) {
    const fragment = FRAGMENTS[m[1]!];
    if (fragment === undefined)
      throw new Error(`${file} spreads ${m[1]}(), which env-names.ts does not know`);
    for (const n of fragment) names.add(n);
  }
  if (names.size === 0) throw new Error(`found no env names in ${file}`);
  return names;
}
