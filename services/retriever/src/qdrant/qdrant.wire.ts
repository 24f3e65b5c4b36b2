import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { VectorPoint } from '@imagebind-llm/vector-store';
// The client's typings are ESM only; see the note in qdrant.driver.ts.
import type { Schemas } from '@qdrant/js-client-rest' with { 'resolution-mode': 'import' };

/** A point already checked by `checkPoints` → Qdrant's wire form. */
export function toPointStruct(point: VectorPoint): Schemas['PointStruct'] {
  const struct: Schemas['PointStruct'] = { id: point.id, vector: Array.from(point.vector) };
  if (point.payload !== undefined) struct.payload = { ...point.payload };
  return struct;
}

export function pointId(id: unknown): number {
  if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) return id;
  throw new DomainError(
    ErrorCode.FailedPrecondition,
    `Qdrant returned point id ${String(id)}, which is not an unsigned safe integer: the collection was ` +
      `written by something other than the retriever`,
  );
}

/** Payloads the retriever wrote are strings already; anything else someone else wrote becomes JSON. */
export function toStringPayload(payload: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isRecord(payload)) return out;
  for (const [key, value] of Object.entries(payload)) {
    out[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return out;
}

/** Array.isArray would narrow a readonly array parameter to any[]. */
export function isArray(value: unknown): boolean {
  return Array.isArray(value);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
