// Typed lookups over rendered objects.
import type { IScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import type { IDeployment, IStatefulSet } from 'kubernetes-models/apps/v1';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import type { IIngress, INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IContainer, IPodSpec, IService } from 'kubernetes-models/v1';
import type { K8sObject } from './helm';

export const COMPONENT_LABEL = 'app.kubernetes.io/component';
export const INSTANCE_LABEL = 'app.kubernetes.io/instance';

interface KindMap {
  Deployment: IDeployment;
  StatefulSet: IStatefulSet;
  Service: IService;
  NetworkPolicy: INetworkPolicy;
  Ingress: IIngress;
  PodDisruptionBudget: IPodDisruptionBudget;
  HorizontalPodAutoscaler: IHorizontalPodAutoscaler;
  ScaledObject: IScaledObject;
}

export function ofKind<K extends keyof KindMap>(objects: readonly K8sObject[], kind: K): KindMap[K][] {
  return objects.filter((o) => o.kind === kind) as unknown as KindMap[K][];
}

export function componentOf(obj: { metadata?: { labels?: Record<string, string> } }): string {
  return obj.metadata?.labels?.[COMPONENT_LABEL] ?? '';
}

/** A Deployment or StatefulSet with its pod template. */
export interface Workload {
  readonly kind: 'Deployment' | 'StatefulSet';
  readonly name: string;
  readonly component: string;
  readonly podLabels: Record<string, string>;
  readonly pod: IPodSpec;
}

export function workloads(objects: readonly K8sObject[]): Workload[] {
  const all = [
    ...ofKind(objects, 'Deployment').map((d) => ({
      kind: 'Deployment' as const,
      obj: d,
      template: d.spec?.template,
    })),
    ...ofKind(objects, 'StatefulSet').map((s) => ({
      kind: 'StatefulSet' as const,
      obj: s,
      template: s.spec?.template,
    })),
  ];
  return all.map(({ kind, obj, template }) => {
    if (template?.spec === undefined) throw new Error(`${kind} ${obj.metadata?.name} has no pod template`);
    return {
      kind,
      name: obj.metadata?.name ?? '',
      component: componentOf(obj),
      podLabels: template.metadata?.labels ?? {},
      pod: template.spec,
    };
  });
}

export function deployment(objects: readonly K8sObject[], component: string): Workload {
  const found = workloads(objects).find((w) => w.kind === 'Deployment' && w.component === component);
  if (found === undefined) throw new Error(`no Deployment for component ${component}`);
  return found;
}

/** The container named after its component (the service process). */
export function mainContainer(w: Workload): IContainer {
  const c = w.pod.containers.find((x) => x.name === w.component) ?? w.pod.containers[0];
  if (c === undefined) throw new Error(`${w.name} has no containers`);
  return c;
}

/** Env of a container: literal values, and `secret:<name>/<key>` for secretKeyRef entries. */
export function envOf(container: IContainer): Map<string, string> {
  const env = new Map<string, string>();
  for (const e of container.env ?? []) {
    if (env.has(e.name)) throw new Error(`${container.name}: env ${e.name} is set twice`);
    const ref = e.valueFrom?.secretKeyRef;
    env.set(e.name, ref !== undefined ? `secret:${ref.name}/${ref.key}` : (e.value ?? ''));
  }
  return env;
}

/** Whether a label selector's matchLabels select the given labels. */
export function selects(
  matchLabels: Record<string, string> | undefined,
  labels: Record<string, string>,
): boolean {
  const entries = Object.entries(matchLabels ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}
