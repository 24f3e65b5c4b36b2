import { DomainError } from '@imagebind-llm/errors';
import type { ScoredVectorPoint } from '@imagebind-llm/vector-store';
// The client's typings are ESM only; see the note in qdrant.driver.ts.
import type { Schemas } from '@qdrant/js-client-rest' with { 'resolution-mode': 'import' };
import { cancelled, internal } from './qdrant.errors';
import { pointId, toStringPayload } from './qdrant.wire';

/**
 * How far a search may over-fetch to settle a tie at the k-th place (see `searchSettlingTies`). A
 * larger tie group than this (e.g. thousands of zero vectors) keeps Qdrant's choice among the tied
 * points.
 */
const MAX_TIE_FETCH = 10_000;

/** What every query of one search asks for besides its vector and limit. */
export interface QuerySettings {
  readonly withPayload: boolean;
  readonly withVector: boolean;
  /** `params.exact`: brute force instead of HNSW. */
  readonly exact: boolean;
  /** With `exact`, score the original vectors rather than their quantized copy. */
  readonly ignoreQuantization: boolean;
}

/** One query asked of Qdrant: a row of the queries and how many hits it wants back. */
export interface TopKQuery {
  readonly row: number[];
  readonly limit: number;
}

/** Splits `[n, dimension]` floats into rows, refusing a ragged length or a non-finite value. */
export function queryRows(queries: Float32Array, dimension: number): number[][] {
  if (queries.length % dimension !== 0) {
    throw DomainError.invalidInput(
      `queries holds ${queries.length} floats, which is not a whole number of vectors of the ` +
        `collection's dimension ${dimension}`,
      'queries',
    );
  }
  const n = queries.length / dimension;
  const rows: number[][] = [];
  for (let i = 0; i < n; i += 1) {
    const row = queries.subarray(i * dimension, (i + 1) * dimension);
    const bad = row.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw DomainError.invalidInput(
        `queries[${i}][${bad}] is ${row[bad]}; every value must be finite`,
        'queries',
      );
    }
    rows.push(Array.from(row));
  }
  return rows;
}

export function queryRequest(query: TopKQuery, settings: QuerySettings): Schemas['QueryRequest'] {
  return {
    query: query.row,
    limit: query.limit,
    with_payload: settings.withPayload,
    with_vector: settings.withVector,
    ...(settings.exact
      ? {
          params: {
            exact: true,
            ...(settings.ignoreQuantization ? { quantization: { ignore: true } } : {}),
          },
        }
      : {}),
  };
}

/**
 * The top `k` hits of each row, equal scores lower id first. Qdrant orders equal scores as it
 * pleases, while the visual cache expects faiss's lower-id-first order (MODEL_SPEC §1.4), so results
 * are re-sorted here. A re-sort alone cannot fix a tie that straddles the k-th place (Qdrant may have
 * kept a higher id and dropped a lower one), so each query asks for k + 1 hits and, when the tie
 * reaches the end of what came back, asks again for more (up to MAX_TIE_FETCH) before cutting at k.
 * `ask` sends one batch of queries and answers one response per query, in order.
 */
export async function searchSettlingTies(
  rows: readonly number[][],
  k: number,
  ask: (queries: TopKQuery[]) => Promise<Schemas['QueryResponse'][]>,
): Promise<Schemas['ScoredPoint'][][]> {
  const limits = rows.map(() => Math.min(k + 1, MAX_TIE_FETCH));
  const hits: Schemas['ScoredPoint'][][] = rows.map(() => []);
  let pending = rows.map((_, i) => i);
  while (pending.length > 0) {
    const asked = pending;
    const responses = await ask(asked.map((i) => ({ row: rows[i]!, limit: limits[i]! })));
    if (responses.length !== asked.length) {
      throw internal(`Qdrant answered ${responses.length} results for ${asked.length} queries`);
    }
    pending = [];
    asked.forEach((queryIndex, j) => {
      const points = [...responses[j]!.points].sort(byScoreThenId);
      hits[queryIndex] = points;
      const limit = limits[queryIndex]!;
      const kth = points[k - 1];
      const last = points[points.length - 1];
      if (points.length === limit && kth !== undefined && last !== undefined && last.score === kth.score) {
        if (limit < MAX_TIE_FETCH) {
          limits[queryIndex] = Math.min(limit * 2, MAX_TIE_FETCH);
          pending.push(queryIndex);
        }
      }
    });
  }
  return hits.map((points) => points.slice(0, k));
}

function byScoreThenId(a: Schemas['ScoredPoint'], b: Schemas['ScoredPoint']): number {
  return b.score - a.score || pointId(a.id) - pointId(b.id);
}

export function toScoredPoint(
  point: Schemas['ScoredPoint'],
  withVector: boolean,
  withPayload: boolean,
  dimension: number,
): ScoredVectorPoint {
  // Qdrant computes and serialises float32 scores; fround gives back the float32 value faiss would.
  const hit: { id: number; score: number; vector?: Float32Array; payload?: Record<string, string> } = {
    id: pointId(point.id),
    score: Math.fround(point.score),
  };
  if (withVector) {
    const vector = point.vector;
    if (
      !Array.isArray(vector) ||
      vector.length !== dimension ||
      !vector.every((v) => typeof v === 'number')
    ) {
      throw internal(
        `Qdrant returned point ${hit.id} without a ${dimension}-float vector although one was asked`,
      );
    }
    hit.vector = Float32Array.from(vector);
  }
  if (withPayload) hit.payload = toStringPayload(point.payload);
  return hit;
}

export function checkNotAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw cancelled();
}

/**
 * The client takes no AbortSignal, so a cancelled search stops waiting here; the HTTP request
 * itself runs to its end (or to timeoutMs) and its answer is dropped.
 */
export async function withSignal<T>(signal: AbortSignal | undefined, work: Promise<T>): Promise<T> {
  if (signal === undefined) return work;
  checkNotAborted(signal);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(cancelled());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : internal(String(error)));
      },
    );
  });
}
