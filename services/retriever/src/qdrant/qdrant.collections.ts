import { DomainError, ErrorCode } from '@imagebind-llm/errors';
// The client's typings are ESM only; see the note in qdrant.driver.ts.
import type { Schemas } from '@qdrant/js-client-rest' with { 'resolution-mode': 'import' };
import { namedVectorsError } from './qdrant.errors';
import { isRecord } from './qdrant.wire';

/** Qdrant's own limit on a vector's size (`VectorParams.size`). */
const MAX_DIMENSION = 65_536;

export function checkDimension(dimension: number): void {
  if (!Number.isInteger(dimension) || dimension < 1 || dimension > MAX_DIMENSION) {
    throw DomainError.invalidInput(
      `dimension must be an integer in 1..${MAX_DIMENSION}, got ${String(dimension)}`,
      'dimension',
    );
  }
}

/** The request that creates a collection of `dimension`-float vectors scored by inner product. */
export function createCollectionRequest(
  params: Schemas['CreateCollection'],
  dimension: number,
): Schemas['CreateCollection'] {
  return { ...params, vectors: { size: dimension, distance: 'Dot' } };
}

/** The size of the collection's one unnamed vector; undefined when it stores named vectors. */
export function singleVectorSize(info: Schemas['CollectionInfo']): number | undefined {
  const vectors = info.config.params.vectors;
  if (isRecord(vectors) && typeof vectors['size'] === 'number') return vectors['size'];
  return undefined;
}

/**
 * Checks that an existing collection is one the driver could have created for `dimension`: one
 * unnamed vector of that size with `Dot` distance. Returns its dimension.
 */
export function checkCompatible(name: string, info: Schemas['CollectionInfo'], dimension: number): number {
  const vectors = info.config.params.vectors;
  const size = singleVectorSize(info);
  if (size === undefined) throw namedVectorsError(name);
  if (size !== dimension) {
    throw new DomainError(
      ErrorCode.FailedPrecondition,
      `Qdrant collection '${name}' has dimension ${size}, not ${dimension}; drop it or use another collection name`,
      { field: 'dimension' },
    );
  }
  const distance = (vectors as Schemas['VectorParams']).distance;
  if (distance !== 'Dot') {
    throw new DomainError(
      ErrorCode.FailedPrecondition,
      `Qdrant collection '${name}' uses ${distance} distance, but the retriever scores by inner product ` +
        `('Dot'); drop it or use another collection name`,
    );
  }
  return size;
}
