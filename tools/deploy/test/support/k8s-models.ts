// Validates rendered objects with kubernetes-models (JSON schemas of the Kubernetes OpenAPI, and
// of the KEDA CRDs). The supported kinds are an explicit list: an object of any other kind is an
// error, so a new template cannot slip in unvalidated.
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { PersistentVolumeClaim, Service, ServiceAccount } from 'kubernetes-models/v1';
import type { K8sObject } from './helm';

interface Validatable {
  validate(): void;
}

function model<T>(Ctor: new (data: T) => Validatable): (data: unknown) => Validatable {
  return (data) => new Ctor(data as T);
}

/** `apiVersion/kind` → model. Add a kind here only together with the template that renders it. */
export const SUPPORTED_KINDS: Readonly<Record<string, (data: unknown) => Validatable>> = {
  'apps/v1/Deployment': model(Deployment),
  'apps/v1/StatefulSet': model(StatefulSet),
  'v1/Service': model(Service),
  'v1/ServiceAccount': model(ServiceAccount),
  'v1/PersistentVolumeClaim': model(PersistentVolumeClaim),
  'policy/v1/PodDisruptionBudget': model(PodDisruptionBudget),
  'networking.k8s.io/v1/NetworkPolicy': model(NetworkPolicy),
  'networking.k8s.io/v1/Ingress': model(Ingress),
  'autoscaling/v2/HorizontalPodAutoscaler': model(HorizontalPodAutoscaler),
  'keda.sh/v1alpha1/ScaledObject': model(ScaledObject),
};

export interface ValidationProblem {
  readonly object: string;
  readonly problem: string;
}

/** Constructs each object's model and validates it; returns every problem (empty when all pass). */
export function validateObjects(objects: readonly K8sObject[]): ValidationProblem[] {
  const problems: ValidationProblem[] = [];
  for (const obj of objects) {
    const type = `${obj.apiVersion}/${obj.kind}`;
    const id = `${type} ${obj.metadata?.name ?? '<no name>'}`;
    const create = SUPPORTED_KINDS[type];
    if (create === undefined) {
      problems.push({ object: id, problem: `no kubernetes-models class for ${type}` });
      continue;
    }
    try {
      create(obj).validate();
    } catch (error) {
      problems.push({ object: id, problem: error instanceof Error ? error.message : String(error) });
    }
  }
  return problems;
}
