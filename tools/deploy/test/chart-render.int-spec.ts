// charts/imagebind rendered offline for the chart defaults, dev and prod: every object validated
// with kubernetes-models, then the properties ARCHITECTURE §7 promises checked on the objects.
// The Qdrant subchart is a placeholder here (support/helm.ts): its own objects are not rendered.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IContainer, IProbe, IPodSpec } from 'kubernetes-models/v1';
import type { INetworkPolicyPeer } from 'kubernetes-models/networking.k8s.io/v1';
import { envNamesOf } from './support/env-names';
import {
  ENV_DIR,
  ENVIRONMENTS,
  NAMESPACE,
  prepareChart,
  RELEASE,
  render,
  saveManifests,
  template,
  type Environment,
  type K8sObject,
} from './support/helm';
import { SUPPORTED_KINDS, validateObjects } from './support/k8s-models';
import {
  componentOf,
  deployment,
  envOf,
  INSTANCE_LABEL,
  mainContainer,
  ofKind,
  selects,
  workloads,
  type Workload,
} from './support/manifests';

const FULLNAME = `${RELEASE}-imagebind`;
const GPU = 'nvidia.com/gpu';
const CLUSTER = `${NAMESPACE}.svc.cluster.local`;

/** Who may call each component's gRPC port (ARCHITECTURE §7); the gateway is public. */
const CALLERS: Readonly<Record<string, readonly string[]>> = {
  decoder: ['gateway'],
  'encoder-vision': ['gateway'],
  'encoder-audio': ['gateway'],
  'encoder-text': ['gateway'],
  'encoder-point': ['gateway'],
  bind: ['gateway'],
  retriever: ['gateway', 'batch-worker'],
  'batch-worker': [],
  redis: ['gateway', 'batch-worker'],
};

let chart: { dir: string; cleanup: () => void };
const rendered = new Map<Environment, K8sObject[]>();

beforeAll(() => {
  chart = prepareChart();
  for (const env of ENVIRONMENTS) {
    const { text, objects } = render(chart.dir, env);
    saveManifests(env, text);
    rendered.set(env, objects);
  }
});

afterAll(() => chart?.cleanup());

function objectsOf(env: Environment): K8sObject[] {
  const objects = rendered.get(env);
  if (objects === undefined) throw new Error(`${env} was not rendered`);
  return objects;
}

function valuesOf(env: 'dev' | 'prod'): Record<string, unknown> {
  return parse(readFileSync(join(ENV_DIR, env, 'values.yaml'), 'utf8')) as Record<string, unknown>;
}

function allContainers(pod: IPodSpec): IContainer[] {
  return [...(pod.initContainers ?? []), ...pod.containers];
}

function onGpuPool(w: Workload): boolean {
  const c = mainContainer(w);
  return (
    w.pod.nodeSelector?.['nvidia.com/gpu.present'] === 'true' &&
    (w.pod.tolerations ?? []).some((t) => t.key === GPU && t.effect === 'NoSchedule') &&
    w.pod.runtimeClassName === 'nvidia' &&
    c.resources?.requests?.[GPU] !== undefined &&
    String(c.resources.requests[GPU]) === String(c.resources.limits?.[GPU]) &&
    Number(c.resources.requests[GPU]) >= 1
  );
}

function hasNoGpu(w: Workload): boolean {
  const c = mainContainer(w);
  return (
    w.pod.nodeSelector?.['nvidia.com/gpu.present'] === undefined &&
    !(w.pod.tolerations ?? []).some((t) => t.key === GPU) &&
    w.pod.runtimeClassName === undefined &&
    c.resources?.requests?.[GPU] === undefined &&
    c.resources?.limits?.[GPU] === undefined
  );
}

/** A CPU or memory quantity in base units (cores, bytes), for comparing requests with limits. */
function quantity(value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(String(value));
  if (m === null) throw new Error(`not a quantity: ${value}`);
  const factor: Record<string, number> = {
    '': 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
  };
  const f = factor[m[2]!];
  if (f === undefined) throw new Error(`unknown quantity suffix in ${value}`);
  return Number(m[1]) * f;
}

/**
 * The pod's QoS class as the kubelet derives it: Guaranteed when every container (init containers
 * too) sets CPU and memory limits and every request it sets equals its limit (a missing request
 * defaults to the limit), BestEffort with no requests or limits at all, else Burstable.
 */
function qosClass(pod: IPodSpec): 'Guaranteed' | 'Burstable' | 'BestEffort' {
  const containers = allContainers(pod);
  const none = containers.every(
    (c) =>
      Object.keys(c.resources?.requests ?? {}).length === 0 &&
      Object.keys(c.resources?.limits ?? {}).length === 0,
  );
  if (none) return 'BestEffort';
  const guaranteed = containers.every((c) => {
    const requests = (c.resources?.requests ?? {}) as Record<string, string | number>;
    const limits = (c.resources?.limits ?? {}) as Record<string, string | number>;
    if (limits['cpu'] === undefined || limits['memory'] === undefined) return false;
    return Object.entries(requests).every(([name, value]) => quantity(value) === quantity(limits[name]));
  });
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

/** The most replicas a Deployment can run: its ScaledObject's or HPA's maximum, else spec.replicas. */
function maxReplicasOf(objects: readonly K8sObject[], name: string): number {
  const so = ofKind(objects, 'ScaledObject').find((s) => s.spec.scaleTargetRef.name === name);
  if (so !== undefined) return so.spec.maxReplicaCount ?? 100;
  const hpa = ofKind(objects, 'HorizontalPodAutoscaler').find((h) => h.spec?.scaleTargetRef.name === name);
  if (hpa !== undefined) return hpa.spec!.maxReplicas;
  const d = ofKind(objects, 'Deployment').find((x) => x.metadata?.name === name);
  return d?.spec?.replicas ?? 1;
}

const HOSTNAME = 'kubernetes.io/hostname';
const ZONE = 'topology.kubernetes.io/zone';

/**
 * The topology keys over which a workload's own pods are spread: a topologySpreadConstraint whose
 * selector matches the pod's labels, or a required pod anti-affinity term against its own pods.
 */
function spreadKeys(w: Workload): Set<string> {
  const keys = new Set<string>();
  for (const c of w.pod.topologySpreadConstraints ?? []) {
    if (selects(c.labelSelector?.matchLabels, w.podLabels)) keys.add(c.topologyKey);
  }
  for (const term of w.pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []) {
    if (selects(term.labelSelector?.matchLabels, w.podLabels)) keys.add(term.topologyKey);
  }
  return keys;
}

/** A NetworkPolicy peer is inside the release when it selects release pods in the same namespace. */
function inRelease(peer: INetworkPolicyPeer): boolean {
  return (
    peer.namespaceSelector === undefined &&
    peer.ipBlock === undefined &&
    peer.podSelector?.matchLabels?.[INSTANCE_LABEL] === RELEASE
  );
}

function httpPortOf(w: Workload): number | undefined {
  return mainContainer(w).ports?.find((p) => p.name === 'http')?.containerPort;
}

function grpcPortOf(w: Workload): number | undefined {
  return mainContainer(w).ports?.find((p) => p.name === 'grpc')?.containerPort;
}

describe('kubernetes-models validation', () => {
  it('flags an unsupported kind and an invalid object (the check can fail)', () => {
    const problems = validateObjects([
      { apiVersion: 'v1', kind: 'ConfigMapp', metadata: { name: 'x' } },
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'y' }, spec: { replicas: 'two' } },
    ]);
    expect(problems.map((p) => p.object)).toEqual(['v1/ConfigMapp x', 'apps/v1/Deployment y']);
  });

  it.each(ENVIRONMENTS)('%s: every object is a supported kind and validates', (env) => {
    const objects = objectsOf(env);
    expect(objects.length).toBeGreaterThan(20);
    expect(validateObjects(objects)).toEqual([]);
    for (const o of objects) expect(Object.keys(SUPPORTED_KINDS)).toContain(`${o.apiVersion}/${o.kind}`);
  });
});

describe.each(ENVIRONMENTS)('%s', (env) => {
  it('runs one Deployment and one Service per service', () => {
    const objects = objectsOf(env);
    const components = Object.keys(CALLERS).filter((c) => c !== 'redis');
    const deployed = ofKind(objects, 'Deployment').map(componentOf).sort();
    expect(deployed).toEqual([...components, 'gateway'].sort());
    for (const c of deployed) {
      expect(ofKind(objects, 'Service').filter((s) => componentOf(s) === c).length).toBeGreaterThanOrEqual(1);
    }
  });

  it('gives every container separate startup, liveness and readiness probes', () => {
    for (const w of workloads(objectsOf(env))) {
      for (const c of w.pod.containers) {
        const probes = [c.startupProbe, c.livenessProbe, c.readinessProbe];
        expect(
          probes.every((p) => p !== undefined),
          `${w.name}/${c.name}`,
        ).toBe(true);
        const json = probes.map((p) => JSON.stringify(p));
        expect(new Set(json).size, `${w.name}/${c.name} probes must differ`).toBe(3);
      }
      if (w.kind !== 'Deployment') continue;
      // The services: gRPC health at startup (SERVING after model load + warm-up), /healthz, /readyz.
      const c = mainContainer(w);
      expect(c.startupProbe?.grpc?.port, w.name).toBe(grpcPortOf(w));
      expect(c.livenessProbe?.httpGet?.path, w.name).toBe('/healthz');
      expect(c.readinessProbe?.httpGet?.path, w.name).toBe('/readyz');
      expect(c.livenessProbe?.httpGet?.port, w.name).toBe('http');
      expect(c.readinessProbe?.httpGet?.port, w.name).toBe('http');
    }
  });

  it('gives the decoder a startup budget that covers loading LLaMA-7B (≥ 5 minutes)', () => {
    const probe = mainContainer(deployment(objectsOf(env), 'decoder')).startupProbe as IProbe;
    // 13.5 GB at ~200 MB/s ≈ 70 s, plus session creation and warm-up, with margin (values.yaml).
    expect((probe.failureThreshold ?? 3) * (probe.periodSeconds ?? 10)).toBeGreaterThanOrEqual(300);
  });

  it('runs every pod and container with the secure defaults', () => {
    const objects = objectsOf(env);
    const accounts = objects.filter((o) => o.kind === 'ServiceAccount');
    expect(accounts.length).toBe(1);
    expect(accounts[0]!['automountServiceAccountToken']).toBe(false);
    for (const w of workloads(objects)) {
      const sc = w.pod.securityContext;
      expect(sc?.runAsNonRoot, w.name).toBe(true);
      expect(sc?.runAsUser, w.name).toBe(1000);
      expect(sc?.fsGroup, w.name).toBeTypeOf('number');
      expect(sc?.seccompProfile?.type, w.name).toBe('RuntimeDefault');
      expect(w.pod.automountServiceAccountToken, w.name).toBe(false);
      expect(w.pod.serviceAccountName, w.name).toBe(accounts[0]!.metadata.name);
      const tmp = w.pod.volumes?.find((v) => v.name === 'tmp');
      expect(tmp?.emptyDir, `${w.name} /tmp`).toBeDefined();
      for (const c of allContainers(w.pod)) {
        const id = `${w.name}/${c.name}`;
        expect(c.securityContext?.readOnlyRootFilesystem, id).toBe(true);
        expect(c.securityContext?.allowPrivilegeEscalation, id).toBe(false);
        expect(c.securityContext?.runAsNonRoot, id).toBe(true);
        expect(c.securityContext?.privileged ?? false, id).toBe(false);
        expect(c.securityContext?.capabilities?.drop, id).toContain('ALL');
        expect(c.securityContext?.capabilities?.add ?? [], id).toEqual([]);
        expect(
          c.volumeMounts?.some((m) => m.name === 'tmp' && m.mountPath === '/tmp'),
          `${id} /tmp`,
        ).toBe(true);
      }
    }
  });

  it('covers every Deployment with a PDB of maxUnavailable 1', () => {
    const objects = objectsOf(env);
    const pdbs = ofKind(objects, 'PodDisruptionBudget');
    for (const w of workloads(objects).filter((x) => x.kind === 'Deployment')) {
      const mine = pdbs.filter((p) => selects(p.spec?.selector?.matchLabels, w.podLabels));
      expect(mine.length, w.name).toBe(1);
      expect(mine[0]!.spec?.maxUnavailable, w.name).toBe(1);
      expect(mine[0]!.spec?.minAvailable, w.name).toBeUndefined();
    }
  });

  it('never scales a Deployment with both an HPA and a ScaledObject', () => {
    const objects = objectsOf(env);
    const targets = new Map<string, string[]>();
    for (const h of ofKind(objects, 'HorizontalPodAutoscaler')) {
      const name = h.spec!.scaleTargetRef.name;
      targets.set(name, [...(targets.get(name) ?? []), 'hpa']);
    }
    for (const s of ofKind(objects, 'ScaledObject')) {
      const name = s.spec.scaleTargetRef.name;
      targets.set(name, [...(targets.get(name) ?? []), 'keda']);
    }
    const deployments = ofKind(objects, 'Deployment');
    for (const [name, scalers] of targets) {
      expect(scalers, name).toHaveLength(1);
      const d = deployments.find((x) => x.metadata?.name === name);
      expect(d, `autoscaler target ${name}`).toBeDefined();
      // The autoscaler owns the replica count; a fixed one would fight it on every upgrade.
      expect(d!.spec?.replicas, name).toBeUndefined();
    }
  });

  it('spreads every Deployment that can run more than one replica over nodes and zones', () => {
    const objects = objectsOf(env);
    for (const w of workloads(objects).filter((x) => x.kind === 'Deployment')) {
      const keys = spreadKeys(w);
      if (maxReplicasOf(objects, w.name) > 1) {
        expect([...keys].sort(), `${w.name}: spread`).toEqual(expect.arrayContaining([HOSTNAME, ZONE]));
        // Hard on nodes, counted per revision (a rollout's surge pods do not skew the new ones).
        const host = (w.pod.topologySpreadConstraints ?? []).find((c) => c.topologyKey === HOSTNAME);
        if (host !== undefined) {
          expect(host.whenUnsatisfiable, w.name).toBe('DoNotSchedule');
          expect(host.matchLabelKeys, w.name).toEqual(['pod-template-hash']);
        }
      } else {
        expect(w.pod.topologySpreadConstraints ?? [], `${w.name}: one replica, nothing to spread`).toEqual(
          [],
        );
      }
    }
  });

  it('places the decoder only on the GPU pool, with nvidia.com/gpu requests == limits', () => {
    const decoder = deployment(objectsOf(env), 'decoder');
    expect(onGpuPool(decoder)).toBe(true);
    const c = mainContainer(decoder);
    expect(c.image).toMatch(/\/imagebind-llm\/decoder:.+-cuda12$/);
    // The chart's default on a GPU pool is cuda,cpu; prod names its own order (WebGPU first).
    expect(envOf(c).get('EXECUTION_PROVIDERS')).toBe(env === 'prod' ? 'webgpu,cuda,cpu' : 'cuda,cpu');
    expect(envOf(c).get('NVIDIA_DRIVER_CAPABILITIES')).toBe('compute,utility,graphics');
    // Services without a GPU image never ask for one.
    for (const component of ['gateway', 'retriever', 'batch-worker', 'bind']) {
      expect(hasNoGpu(deployment(objectsOf(env), component)), component).toBe(true);
    }
  });

  it('exposes only the gateway: Services stay in the cluster, gRPC Services are headless', () => {
    const objects = objectsOf(env);
    const gatewayService = `${FULLNAME}-gateway`;
    for (const s of ofKind(objects, 'Service')) {
      const name = s.metadata!.name!;
      expect(s.spec?.externalIPs ?? [], name).toEqual([]);
      if (name !== gatewayService) expect(s.spec?.type ?? 'ClusterIP', name).toBe('ClusterIP');
      if (name !== gatewayService && (s.spec?.ports ?? []).some((p) => p.name === 'grpc')) {
        expect(s.spec?.clusterIP, `${name} must be headless`).toBe('None');
      }
    }
    for (const ing of ofKind(objects, 'Ingress')) {
      const backends = (ing.spec?.rules ?? [])
        .flatMap((r) => r.http?.paths ?? [])
        .map((p) => p.backend.service?.name);
      expect(backends.length).toBeGreaterThan(0);
      expect(new Set(backends)).toEqual(new Set([gatewayService]));
      expect(ing.spec?.defaultBackend).toBeUndefined();
    }
  });

  it('denies ingress by default and lets only the gateway accept traffic from outside the release', () => {
    const objects = objectsOf(env);
    const policies = ofKind(objects, 'NetworkPolicy');
    const deny = policies.filter(
      (p) =>
        JSON.stringify(p.spec?.podSelector?.matchLabels) === JSON.stringify({ [INSTANCE_LABEL]: RELEASE }) &&
        (p.spec?.ingress ?? []).length === 0 &&
        (p.spec?.policyTypes ?? []).includes('Ingress'),
    );
    expect(deny).toHaveLength(1);
    const all = workloads(objects);
    let gatewayOpen = false;
    for (const policy of policies) {
      const selected = all.filter((w) => selects(policy.spec?.podSelector?.matchLabels, w.podLabels));
      const isGateway = selected.length > 0 && selected.every((w) => w.component === 'gateway');
      for (const rule of policy.spec?.ingress ?? []) {
        const peers = rule.from ?? [];
        const external = peers.length === 0 || peers.some((p) => !inRelease(p));
        if (!external) continue;
        const ports = (rule.ports ?? []).map((p) => p.port);
        expect(ports.length, `${policy.metadata?.name}: an external rule names its ports`).toBeGreaterThan(0);
        if (isGateway) {
          gatewayOpen ||=
            ports.includes(grpcPortOf(selected[0]!)) && ports.includes(httpPortOf(selected[0]!));
          continue;
        }
        // Anything else: only Prometheus, from a selected namespace, to the metrics (HTTP) port.
        for (const p of peers) {
          expect(
            Object.keys(p.namespaceSelector?.matchLabels ?? {}).length,
            policy.metadata?.name,
          ).toBeGreaterThan(0);
          expect(p.ipBlock, policy.metadata?.name).toBeUndefined();
        }
        for (const w of selected)
          expect(ports, `${policy.metadata?.name} → ${w.name}`).toEqual([httpPortOf(w)]);
      }
    }
    expect(gatewayOpen).toBe(true);
  });

  it('accepts gRPC on each internal service only from the components that call it', () => {
    const objects = objectsOf(env);
    const policies = ofKind(objects, 'NetworkPolicy');
    for (const w of workloads(objects).filter((x) => x.component !== 'gateway')) {
      const mine = policies.filter(
        (p) =>
          selects(p.spec?.podSelector?.matchLabels, w.podLabels) &&
          p.spec?.podSelector?.matchLabels?.['app.kubernetes.io/component'] !== undefined,
      );
      expect(mine, w.name).toHaveLength(1);
      const port = w.component === 'redis' ? 6379 : grpcPortOf(w);
      const callers = (mine[0]!.spec?.ingress ?? [])
        .filter((r) => (r.ports ?? []).some((p) => p.port === port))
        .flatMap((r) => r.from ?? [{}])
        .map((peer) =>
          inRelease(peer) ? peer.podSelector!.matchLabels!['app.kubernetes.io/component'] : 'outside',
        );
      expect(callers.sort(), w.name).toEqual([...CALLERS[w.component]!].sort());
    }
  });

  it('sets only env names the services read, binds 0.0.0.0 and drains within the grace period', () => {
    for (const w of workloads(objectsOf(env)).filter((x) => x.kind === 'Deployment')) {
      const c = mainContainer(w);
      const vars = envOf(c);
      const real = envNamesOf(w.component);
      // Read by the NVIDIA container toolkit, not the service: GPU pods only.
      if (onGpuPool(w)) real.add('NVIDIA_DRIVER_CAPABILITIES');
      expect(
        [...vars.keys()].filter((n) => !real.has(n)),
        w.name,
      ).toEqual([]);
      const prefix = w.component === 'gateway' ? 'GATEWAY_' : '';
      expect(vars.get(`${prefix}GRPC_HOST`), w.name).toBe('0.0.0.0');
      expect(vars.get(`${prefix}HTTP_HOST`), w.name).toBe('0.0.0.0');
      expect(Number(vars.get(`${prefix}GRPC_PORT`)), w.name).toBe(grpcPortOf(w));
      expect(Number(vars.get(`${prefix}HTTP_PORT`)), w.name).toBe(httpPortOf(w));
      const graceMs = Number(vars.get('SHUTDOWN_GRACE_MS'));
      const preStopMs = (c.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
      expect(graceMs, w.name).toBeGreaterThan(0);
      expect((w.pod.terminationGracePeriodSeconds ?? 30) * 1000, w.name).toBeGreaterThan(graceMs + preStopMs);
    }
  });

  it('points the gateway at the headless Services with dns:/// targets and keys from a Secret', () => {
    const objects = objectsOf(env);
    const gateway = envOf(mainContainer(deployment(objects, 'gateway')));
    expect(gateway.get('GATEWAY_MODE')).toBe('distributed');
    expect(gateway.get('GATEWAY_API_KEYS')).toMatch(/^secret:.+\/.+/);
    const targets = {
      GATEWAY_DECODER_TARGET: 'decoder',
      GATEWAY_BIND_TARGET: 'bind',
      GATEWAY_RETRIEVER_TARGET: 'retriever',
      GATEWAY_ENCODER_VISION_TARGET: 'encoder-vision',
      GATEWAY_ENCODER_AUDIO_TARGET: 'encoder-audio',
      GATEWAY_ENCODER_TEXT_TARGET: 'encoder-text',
      GATEWAY_ENCODER_POINT_TARGET: 'encoder-point',
    };
    for (const [name, component] of Object.entries(targets)) {
      const service = ofKind(objects, 'Service').find((s) => s.metadata?.name === `${FULLNAME}-${component}`);
      expect(service?.spec?.clusterIP, component).toBe('None');
      const port = service!.spec!.ports!.find((p) => p.name === 'grpc')!.port;
      expect(gateway.get(name)).toBe(`dns:///${FULLNAME}-${component}.${CLUSTER}:${port}`);
    }
    const worker = envOf(mainContainer(deployment(objects, 'batch-worker')));
    expect(worker.get('GATEWAY_TARGET')).toBe(`dns:///${FULLNAME}-gateway-headless.${CLUSTER}:50051`);
    expect(worker.get('RETRIEVER_TARGET')).toBe(`dns:///${FULLNAME}-retriever.${CLUSTER}:50091`);
  });

  it('mounts the model repository read-only wherever models are loaded', () => {
    for (const component of [
      'decoder',
      'encoder-vision',
      'encoder-audio',
      'encoder-text',
      'encoder-point',
      'bind',
    ]) {
      const w = deployment(objectsOf(env), component);
      const c = mainContainer(w);
      expect(envOf(c).get('MODEL_REPO'), component).toBe('/models');
      expect(c.volumeMounts?.find((m) => m.mountPath === '/models')?.readOnly, component).toBe(true);
    }
  });
});

describe('encoders are configurable per pool', () => {
  it('passes tracing.otlpEndpoint to every service as OTEL_EXPORTER_OTLP_ENDPOINT (off by default)', () => {
    const deployments = (objects: K8sObject[]): Workload[] =>
      workloads(objects).filter((x) => x.kind === 'Deployment');
    for (const w of deployments(objectsOf('default'))) {
      expect(envOf(mainContainer(w)).has('OTEL_EXPORTER_OTLP_ENDPOINT'), w.name).toBe(false);
    }
    const url = 'http://otel-collector.observability:4318';
    const traced = deployments(
      render(chart.dir, 'default', ['--set', `tracing.otlpEndpoint=${url}`]).objects,
    );
    expect(traced.length).toBeGreaterThan(0);
    for (const w of traced) {
      expect(envOf(mainContainer(w)).get('OTEL_EXPORTER_OTLP_ENDPOINT'), w.name).toBe(url);
    }
    expect(template(chart.dir, 'default', ['--set', 'tracing.otlpEndpoint=otel:4318']).status).not.toBe(0);
  });

  it('moves an encoder onto the GPU pool with --set, GPU image and CUDA provider included', () => {
    const before = deployment(objectsOf('default'), 'encoder-text');
    expect(hasNoGpu(before)).toBe(true);
    expect(mainContainer(before).image).not.toMatch(/-cuda12$/);
    expect(envOf(mainContainer(before)).get('EXECUTION_PROVIDERS')).toBe('cpu');

    const moved = deployment(
      render(chart.dir, 'default', ['--set', 'encoderText.pool=gpu']).objects,
      'encoder-text',
    );
    expect(onGpuPool(moved)).toBe(true);
    expect(mainContainer(moved).image).toMatch(/\/imagebind-llm\/encoder-text:.+-cuda12$/);
    expect(envOf(mainContainer(moved)).get('EXECUTION_PROVIDERS')).toBe('cuda,cpu');
  });

  it('dev runs the encoders on CPU; prod puts vision and audio on the small GPU pool', () => {
    for (const c of ['encoder-vision', 'encoder-audio', 'encoder-text', 'encoder-point']) {
      expect(hasNoGpu(deployment(objectsOf('dev'), c)), c).toBe(true);
    }
    for (const c of ['encoder-vision', 'encoder-audio']) {
      const w = deployment(objectsOf('prod'), c);
      expect(onGpuPool(w), c).toBe(true);
      expect(w.pod.nodeSelector?.['imagebind-llm/pool'], c).toBe('gpu-small');
    }
    expect(deployment(objectsOf('prod'), 'decoder').pod.nodeSelector?.['imagebind-llm/pool']).toBe(
      'gpu-large',
    );
    expect(hasNoGpu(deployment(objectsOf('prod'), 'encoder-text'))).toBe(true);
  });
});

describe('prod', () => {
  const triggerOf = (component: string) => {
    const so = ofKind(objectsOf('prod'), 'ScaledObject').find(
      (s) => s.metadata?.name === `${FULLNAME}-${component}`,
    );
    expect(so, component).toBeDefined();
    expect(so!.spec.scaleTargetRef.name).toBe(`${FULLNAME}-${component}`);
    expect(so!.spec.minReplicaCount).toBeTypeOf('number');
    expect(so!.spec.maxReplicaCount).toBeGreaterThan(so!.spec.minReplicaCount!);
    expect(so!.spec.cooldownPeriod).toBeGreaterThan(0);
    const [trigger] = so!.spec.triggers;
    expect(trigger?.type).toBe('prometheus');
    return trigger!.metadata as Record<string, string>;
  };

  it('scales the decoder with KEDA on its batcher queue depth', () => {
    const m = triggerOf('decoder');
    expect(m['query']).toContain('ibllm_batcher_queue_depth{');
    expect(m['query']).toContain(`namespace="${NAMESPACE}"`);
    expect(m['query']).toContain(`pod=~"${FULLNAME}-decoder-[a-z0-9]+-[a-z0-9]+"`);
    expect(Number(m['threshold'])).toBeGreaterThan(0);
    expect(m['serverAddress']).toMatch(/^https?:\/\//);
  });

  it('scales the batch workers with KEDA on the BullMQ backlog (waiting + prioritized)', () => {
    const m = triggerOf('batch-worker');
    expect(m['query']).toMatch(/^sum\(.*ibllm_batch_queue_jobs\{.*state=~"waiting\|prioritized".*\}/);
    expect(m['query']).toContain('queue="ibllm-batch"');
    expect(Number(m['threshold'])).toBeGreaterThan(0);
  });

  it('scales every encoder and bind with KEDA, and the gateway and retriever with an HPA', () => {
    const objects = objectsOf('prod');
    const keda = ofKind(objects, 'ScaledObject').map(componentOf).sort();
    expect(keda).toEqual(
      [
        'batch-worker',
        'bind',
        'decoder',
        'encoder-audio',
        'encoder-point',
        'encoder-text',
        'encoder-vision',
      ].sort(),
    );
    for (const s of ofKind(objects, 'ScaledObject')) {
      const query = (s.spec.triggers[0]!.metadata as Record<string, string>)['query']!;
      expect(query).toMatch(
        componentOf(s) === 'batch-worker' ? /ibllm_batch_queue_jobs/ : /ibllm_batcher_queue_depth/,
      );
    }
    expect(ofKind(objects, 'HorizontalPodAutoscaler').map(componentOf).sort()).toEqual([
      'gateway',
      'retriever',
    ]);
  });

  it('runs the decoder and the GPU encoders in the Guaranteed QoS class (CPU, memory and GPU)', () => {
    const objects = objectsOf('prod');
    const onGpu = workloads(objects).filter((w) => w.kind === 'Deployment' && onGpuPool(w));
    expect(onGpu.map((w) => w.component).sort()).toEqual(['decoder', 'encoder-audio', 'encoder-vision']);
    for (const w of onGpu) {
      expect(qosClass(w.pod), w.name).toBe('Guaranteed');
      const { requests = {}, limits = {} } = mainContainer(w).resources ?? {};
      for (const resource of ['cpu', 'memory', GPU]) {
        expect(requests[resource], `${w.name}: requests.${resource}`).toBeDefined();
        expect(quantity(requests[resource]), `${w.name}: ${resource} request = limit`).toBe(
          quantity(limits[resource]),
        );
      }
    }
    // The check can fail: the prod decoder's former 32Gi request under a 48Gi limit was Burstable.
    const burstable = structuredClone(deployment(objects, 'decoder').pod);
    burstable.containers[0]!.resources!.requests!['memory'] = '32Gi';
    expect(qosClass(burstable)).toBe('Burstable');
  });

  it('spreads every Deployment (all can scale past one replica) and serves the decoder through WebGPU', () => {
    const objects = objectsOf('prod');
    const deployments = workloads(objects).filter((w) => w.kind === 'Deployment');
    expect(deployments).toHaveLength(9);
    for (const w of deployments) {
      expect(maxReplicasOf(objects, w.name), w.name).toBeGreaterThan(1);
      expect([...spreadKeys(w)], w.name).toEqual(expect.arrayContaining([HOSTNAME, ZONE]));
    }
    // GPU pods ask the container toolkit for the Vulkan ICD too; the decoder prefers WebGPU.
    for (const w of deployments.filter((x) => onGpuPool(x))) {
      const env = envOf(mainContainer(w));
      expect(env.get('NVIDIA_DRIVER_CAPABILITIES'), w.name).toBe('compute,utility,graphics');
      expect(env.get('EXECUTION_PROVIDERS'), w.name).toBe(
        w.component === 'decoder' ? 'webgpu,cuda,cpu' : 'cuda,cpu',
      );
    }
    const operations = readFileSync(join(ENV_DIR, '..', '..', 'docs', 'operations.md'), 'utf8');
    expect(operations, 'docs/operations.md documents the order').toContain('webgpu,cuda,cpu');
  });

  it('uses distributed Qdrant through the retriever with shards and replication', () => {
    const env = envOf(mainContainer(deployment(objectsOf('prod'), 'retriever')));
    expect(env.get('RETRIEVER_DRIVER')).toBe('qdrant');
    expect(env.get('QDRANT_URL')).toBe(`http://${RELEASE}-qdrant.${CLUSTER}:6333`);
    expect(env.get('QDRANT_SHARDS')).toBe('6');
    expect(env.get('QDRANT_REPLICAS')).toBe('2');
    expect(env.get('QDRANT_WRITE_CONSISTENCY')).toBe('1');
    expect(env.get('QDRANT_QUANTIZATION')).toBe('none');
    expect(env.get('QDRANT_ON_DISK_PAYLOAD')).toBe('true');
    expect(env.get('QDRANT_API_KEY')).toMatch(/^secret:/);
    // The real cache is seeded once by an import job, not by every retriever at start-up.
    expect(env.has('RETRIEVER_SEED_FROM_REPO')).toBe(false);
    // The Qdrant chart's own objects are not rendered offline: check what prod hands it.
    const qdrant = valuesOf('prod')['qdrant'] as {
      replicaCount: number;
      config: { cluster: { enabled: boolean } };
    };
    expect(qdrant.replicaCount).toBe(3);
    expect(qdrant.config.cluster.enabled).toBe(true);
    // Only the retriever (and Qdrant's own peers) reach Qdrant.
    const policy = ofKind(objectsOf('prod'), 'NetworkPolicy').find(
      (p) => p.metadata?.name === `${FULLNAME}-qdrant`,
    );
    const from = (policy?.spec?.ingress ?? []).flatMap((r) => r.from ?? [{}]);
    const sources = from.map(
      (p) =>
        p.podSelector?.matchLabels?.['app.kubernetes.io/component'] ??
        p.podSelector?.matchLabels?.['app.kubernetes.io/name'],
    );
    expect(new Set(sources)).toEqual(new Set(['retriever', 'qdrant']));
  });

  it('uses an external Redis from a Secret and exposes the gateway through TLS Ingresses', () => {
    const objects = objectsOf('prod');
    expect(ofKind(objects, 'StatefulSet')).toHaveLength(0);
    expect(envOf(mainContainer(deployment(objects, 'gateway'))).get('GATEWAY_REDIS_URL')).toBe(
      'secret:imagebind-redis/redis-url',
    );
    expect(envOf(mainContainer(deployment(objects, 'batch-worker'))).get('REDIS_URL')).toBe(
      'secret:imagebind-redis/redis-url',
    );
    const ingresses = ofKind(objects, 'Ingress');
    expect(ingresses).toHaveLength(2);
    for (const ing of ingresses) {
      const hosts = (ing.spec?.rules ?? []).map((r) => r.host);
      expect((ing.spec?.tls ?? []).flatMap((t) => t.hosts ?? [])).toEqual(hosts);
    }
  });
});

describe('dev', () => {
  it('runs one replica of everything without autoscalers', () => {
    const objects = objectsOf('dev');
    expect(ofKind(objects, 'ScaledObject')).toHaveLength(0);
    expect(ofKind(objects, 'HorizontalPodAutoscaler')).toHaveLength(0);
    for (const d of ofKind(objects, 'Deployment')) expect(d.spec?.replicas, d.metadata?.name).toBe(1);
  });

  it('keeps the embedded vector store on a PVC, one pod at a time', () => {
    const objects = objectsOf('dev');
    const w = deployment(objects, 'retriever');
    const env = envOf(mainContainer(w));
    expect(env.get('RETRIEVER_DRIVER')).toBe('embedded');
    expect(env.get('RETRIEVER_DATA_DIR')).toBe('/data');
    expect(env.get('QDRANT_URL')).toBeUndefined();
    const claim = w.pod.volumes?.find((v) => v.name === 'data')?.persistentVolumeClaim?.claimName;
    expect(objects.some((o) => o.kind === 'PersistentVolumeClaim' && o.metadata.name === claim)).toBe(true);
    const d = ofKind(objects, 'Deployment').find((x) => componentOf(x) === 'retriever');
    expect(d?.spec?.strategy?.type).toBe('Recreate');
  });

  it('runs the built-in Redis with noeviction and AOF, used by the gateway and the workers', () => {
    const objects = objectsOf('dev');
    const [redis] = ofKind(objects, 'StatefulSet');
    const args = redis!.spec!.template.spec!.containers[0]!.args!.join(' ');
    expect(args).toContain('--maxmemory-policy noeviction');
    expect(args).toContain('--appendonly yes');
    const url = `redis://${FULLNAME}-redis.${CLUSTER}:6379`;
    expect(envOf(mainContainer(deployment(objects, 'gateway'))).get('GATEWAY_REDIS_URL')).toBe(url);
    expect(envOf(mainContainer(deployment(objects, 'batch-worker'))).get('REDIS_URL')).toBe(url);
  });

  it('downloads the model repository in an init container that verifies its sha256', () => {
    const w = deployment(objectsOf('dev'), 'decoder');
    const init = w.pod.initContainers?.find((c) => c.name === 'fetch-models');
    expect(init).toBeDefined();
    expect(init!.command!.join('\n')).toMatch(/sha256sum -c/);
    expect(init!.volumeMounts?.find((m) => m.name === 'models')?.readOnly).not.toBe(true);
    expect(w.pod.volumes?.find((v) => v.name === 'models')?.emptyDir).toBeDefined();
    // Components without models do not wait for the download.
    expect(deployment(objectsOf('dev'), 'gateway').pod.initContainers).toBeUndefined();
  });
});

describe('defaults', () => {
  it('uses an existing PVC for the models by default, mounted read-only', () => {
    const w = deployment(objectsOf('default'), 'decoder');
    expect(w.pod.initContainers).toBeUndefined();
    const volume = w.pod.volumes?.find((v) => v.name === 'models');
    expect(volume?.persistentVolumeClaim).toEqual({ claimName: 'imagebind-models', readOnly: true });
  });
});
