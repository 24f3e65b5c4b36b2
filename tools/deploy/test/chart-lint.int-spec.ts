// charts/imagebind: helm lint, the values schema and the template guards, offline (helm v4 on a
// copy of the chart with a placeholder Qdrant subchart; see support/helm.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envNamesOf } from './support/env-names';
import {
  CHART_DIR,
  chartDependencies,
  ENV_DIR,
  ENVIRONMENTS,
  helm,
  lint,
  prepareChart,
  RELEASE,
  template,
} from './support/helm';
import { undocumentedKeys } from './support/values-docs';

interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  definitions?: Record<string, JsonSchema>;
}

const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as JsonSchema;
const defaults = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as Record<string, unknown>;

function resolve(s: JsonSchema): JsonSchema {
  if (s.$ref === undefined) return s;
  const name = s.$ref.replace('#/definitions/', '');
  const target = schema.definitions?.[name];
  if (target === undefined) throw new Error(`unresolved ${s.$ref}`);
  return target;
}

/** Service blocks of values.yaml → component names (the env schema each one feeds). */
const SERVICE_BLOCKS: Readonly<Record<string, string>> = {
  gateway: 'gateway',
  decoder: 'decoder',
  encoderVision: 'encoder-vision',
  encoderAudio: 'encoder-audio',
  encoderText: 'encoder-text',
  encoderPoint: 'encoder-point',
  bind: 'bind',
  retriever: 'retriever',
  batchWorker: 'batch-worker',
};

let chart: { dir: string; cleanup: () => void };

beforeAll(() => {
  chart = prepareChart();
});

afterAll(() => chart?.cleanup());

describe('helm lint', () => {
  it.each(ENVIRONMENTS)('%s values pass helm lint --strict', (env) => {
    const r = lint(chart.dir, env);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).not.toMatch(/\[(ERROR|WARNING)\]/);
  });

  it('the chart pins the official Qdrant chart as a conditional dependency', () => {
    const qdrant = chartDependencies().find((d) => d.name === 'qdrant');
    expect(qdrant).toMatchObject({
      repository: 'https://qdrant.github.io/qdrant-helm',
      condition: 'qdrant.enabled',
    });
    expect(qdrant?.version).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('values.schema.json', () => {
  it('rejects a typo in a service block (and accepts the correct key)', () => {
    const typo = template(chart.dir, 'default', ['--set', 'decoder.replicaCont=2']);
    expect(typo.status).not.toBe(0);
    expect(typo.stderr).toMatch(/replicaCont/);
    const correct = template(chart.dir, 'default', ['--set', 'decoder.replicaCount=2']);
    expect(correct.status, correct.stderr).toBe(0);
  });

  it('rejects a typo at the top level and in nested blocks', () => {
    for (const set of ['kedaa.enabled=true', 'pools.gpu.gpus=2', 'retriever.qdrant.replicaFactor=2']) {
      const r = template(chart.dir, 'default', ['--set', set]);
      expect(r.status, set).not.toBe(0);
    }
  });

  it('rejects an env name the service does not read, and a wrongly typed env value', () => {
    const name = template(chart.dir, 'default', ['--set', 'decoder.env.DECODER_MAX_BATHC=8']);
    expect(name.status).not.toBe(0);
    expect(name.stderr).toMatch(/DECODER_MAX_BATHC/);
    const value = template(chart.dir, 'default', ['--set', 'decoder.env.DECODER_MAX_BATCH=lots']);
    expect(value.status).not.toBe(0);
  });

  it('rejects values outside their enums', () => {
    expect(template(chart.dir, 'default', ['--set', 'retriever.driver=faiss']).status).not.toBe(0);
    expect(template(chart.dir, 'default', ['--set', 'logLevel=verbose']).status).not.toBe(0);
  });

  it('lists only env names the services really read', () => {
    for (const [block, component] of Object.entries(SERVICE_BLOCKS)) {
      const service = resolve(schema.properties![block]!);
      expect(service.additionalProperties, block).toBe(false);
      const env = resolve(service.properties!['env']!);
      expect(env.additionalProperties, `${block}.env`).toBe(false);
      const real = envNamesOf(component);
      const unknown = Object.keys(env.properties ?? {}).filter((n) => !real.has(n));
      expect(unknown, `${block}.env names not in the ${component} env schema`).toEqual([]);
    }
  });

  it('covers every top-level key of values.yaml and of the environment files', () => {
    const known = new Set(Object.keys(schema.properties!));
    expect(schema.additionalProperties).toBe(false);
    const files: Record<string, unknown>[] = [
      defaults,
      ...['dev', 'prod'].map(
        (e) => parse(readFileSync(join(ENV_DIR, e, 'values.yaml'), 'utf8')) as Record<string, unknown>,
      ),
    ];
    for (const values of files) {
      expect(Object.keys(values).filter((k) => !known.has(k))).toEqual([]);
    }
  });
});

describe('values.yaml documentation', () => {
  it('documents every value in helm-docs style (# --)', () => {
    expect(undocumentedKeys(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8'))).toEqual([]);
  });

  it('the checker flags an undocumented value', () => {
    const text = 'a:\n  # -- documented\n  b: 1\n  c: 2\n# -- whole map\nd:\n  e: 1\n';
    expect(undocumentedKeys(text).map((k) => k.path)).toEqual(['a.c']);
  });
});

describe('template guards', () => {
  it('refuses a gateway without an API key Secret (it would refuse to bind 0.0.0.0)', () => {
    const r = template(chart.dir, 'default', ['--set', 'gateway.apiKeys.existingSecret=']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/GATEWAY_API_KEYS/);
  });

  it('refuses a terminationGracePeriodSeconds that does not cover preStop + SHUTDOWN_GRACE_MS', () => {
    const r = template(chart.dir, 'default', ['--set', 'decoder.terminationGracePeriodSeconds=60']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/terminationGracePeriodSeconds/);
  });

  it('refuses a pool that is not defined', () => {
    const r = template(chart.dir, 'default', ['--set', 'encoderAudio.pool=tpu']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/pool "tpu"/);
  });

  it('refuses several replicas of the embedded vector store', () => {
    const r = template(chart.dir, 'dev', ['--set', 'retriever.replicaCount=2']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/embedded/);
  });

  it('refuses model services without a model repository source', () => {
    const r = template(chart.dir, 'default', ['--set', 'models.pvc.claimName=']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/model repository/);
  });

  it('refuses clusters older than its kubeVersion', () => {
    const r = helm(['template', RELEASE, chart.dir, '--kube-version', '1.29.0']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/kubeVersion|Kubernetes version/i);
  });
});
