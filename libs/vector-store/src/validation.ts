import { DomainError } from '@imagebind-llm/errors';
import type { VectorPoint } from './vector-store.port';

/** Folder-safe: a collection name is also its directory name in the embedded store. */
export const COLLECTION_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const MAX_K = 1000;
/** Far above any embedding width in use (ImageBind 1024, LLaMA 4096); guards against typos like 1e9. */
export const MAX_DIMENSION = 65_536;

export function checkCollectionName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !COLLECTION_NAME.test(name)) {
    throw DomainError.invalidInput(
      `collection name ${JSON.stringify(name)} is not allowed: use 1–64 letters, digits, '_', '.' or '-', ` +
        'starting with a letter or digit',
      'collection',
    );
  }
}

export function checkDimension(dimension: unknown): asserts dimension is number {
  if (
    typeof dimension !== 'number' ||
    !Number.isSafeInteger(dimension) ||
    dimension < 1 ||
    dimension > MAX_DIMENSION
  ) {
    throw DomainError.invalidInput(
      `dimension must be an integer in 1..${MAX_DIMENSION}, got ${String(dimension)}`,
      'dimension',
    );
  }
}

export function checkK(k: unknown): asserts k is number {
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > MAX_K) {
    throw DomainError.invalidInput(`k must be an integer in 1..${MAX_K}, got ${String(k)}`, 'k');
  }
}

export function checkId(id: unknown, field: string): asserts id is number {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
    throw DomainError.invalidInput(
      `${field} must be a non-negative safe integer (0..${Number.MAX_SAFE_INTEGER}), got ${String(id)}`,
      field,
    );
  }
}

/** Index of the first NaN or ±Infinity, or -1. */
export function firstNonFinite(values: Float32Array, from = 0, to = values.length): number {
  for (let i = from; i < to; i++) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}

/**
 * Checks a whole batch before anything is written, so a bad point never leaves half a batch stored.
 * Messages name the point by position and id: a faiss import or a client batch can find it.
 */
export function checkPoints(points: unknown, dimension: number): asserts points is readonly VectorPoint[] {
  if (!Array.isArray(points)) throw DomainError.invalidInput('points must be an array', 'points');
  points.forEach((point: unknown, i) => {
    const field = `points[${i}]`;
    if (typeof point !== 'object' || point === null) {
      throw DomainError.invalidInput(`${field} must be an object with id and vector`, field);
    }
    const { id, vector, payload } = point as Partial<Record<keyof VectorPoint, unknown>>;
    checkId(id, `${field}.id`);
    if (!(vector instanceof Float32Array)) {
      throw DomainError.invalidInput(`${field} (id ${id}): vector must be a Float32Array`, `${field}.vector`);
    }
    if (vector.length !== dimension) {
      throw DomainError.invalidInput(
        `${field} (id ${id}): vector has ${vector.length} values, expected ${dimension} (the collection's dimension)`,
        `${field}.vector`,
      );
    }
    const bad = firstNonFinite(vector);
    if (bad >= 0) {
      throw DomainError.invalidInput(
        `${field} (id ${id}): vector[${bad}] is ${vector[bad]}; every component must be a finite number`,
        `${field}.vector`,
      );
    }
    if (payload !== undefined) checkPayload(payload, `${field}.payload`, id);
  });
}

function checkPayload(payload: unknown, field: string, id: number): void {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw DomainError.invalidInput(`${field} (id ${id}) must be an object of strings`, field);
  }
  for (const [key, value] of Object.entries(payload)) {
    if (typeof value !== 'string') {
      throw DomainError.invalidInput(
        `${field}.${key} (id ${id}) is a ${typeof value}; payload values must be strings`,
        `${field}.${key}`,
      );
    }
  }
}

export function checkIds(ids: unknown): asserts ids is readonly number[] {
  if (!Array.isArray(ids)) throw DomainError.invalidInput('ids must be an array', 'ids');
  ids.forEach((id: unknown, i) => checkId(id, `ids[${i}]`));
}

/** Returns the number of queries in `queries` ([n, dimension] row-major). */
export function checkQueries(queries: unknown, dimension: number): number {
  if (!(queries instanceof Float32Array)) {
    throw DomainError.invalidInput('queries must be a Float32Array ([n, dimension] row-major)', 'queries');
  }
  if (queries.length % dimension !== 0) {
    throw DomainError.invalidInput(
      `queries hold ${queries.length} values, not a multiple of the collection's dimension ${dimension}`,
      'queries',
    );
  }
  const bad = firstNonFinite(queries);
  if (bad >= 0) {
    throw DomainError.invalidInput(
      `query ${Math.floor(bad / dimension)} has ${queries[bad]} at position ${bad % dimension}; queries must be finite`,
      'queries',
    );
  }
  return queries.length / dimension;
}
