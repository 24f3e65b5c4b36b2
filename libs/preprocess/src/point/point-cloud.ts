import { DomainError, ErrorCode } from '@imagebind-llm/errors';

/**
 * How the point encoder groups a cloud (MODEL_SPEC §3.7 steps 1–2): `numGroup` FPS centres with
 * `groupSize` nearest neighbours each. They belong to the checkpoint (Point-BERT's yaml; the official
 * one has 512 and 32), so serving reads them from the model repository, never from a constant.
 */
export interface PointGrouping {
  readonly numGroup: number;
  readonly groupSize: number;
}

/** The point count the encoder was trained on (the yaml's `npoints`). */
export const POINT_TRAIN_POINTS = 8192;
/** Default cap on points per cloud; larger inputs get PAYLOAD_TOO_LARGE. */
export const DEFAULT_MAX_POINTS = 10_000_000;

/** `[count, 3]` float32 positions, row-major (x, y, z per point). */
export interface PointCloud {
  readonly points: Float32Array;
  readonly count: number;
}

export function invalidPointInput(message: string, details: Record<string, unknown> = {}): DomainError {
  return new DomainError(ErrorCode.InvalidInput, message, details);
}

export function unsupportedPointMedia(message: string, details: Record<string, unknown> = {}): DomainError {
  return new DomainError(ErrorCode.UnsupportedMedia, message, details);
}

export function tooManyPoints(name: string, count: number, limit: number): DomainError {
  return new DomainError(
    ErrorCode.PayloadTooLarge,
    `${name}: ${count} points exceed the limit of ${limit} (server setting PREPROCESS_MAX_POINTS); ` +
      `downsample the cloud (the encoder was trained on ${POINT_TRAIN_POINTS})`,
    { limit, count },
  );
}

/** Rejects non-finite coordinates and counts outside [minPoints, maxPoints]. */
export function validatePointCloud(
  cloud: PointCloud,
  name: string,
  limits: { readonly minPoints: number; readonly maxPoints: number },
): PointCloud {
  const { points, count } = cloud;
  if (points.length !== count * 3) {
    throw new Error(`${name}: ${points.length} values for ${count} points`);
  }
  if (count > limits.maxPoints) throw tooManyPoints(name, count, limits.maxPoints);
  if (count === 0) throw invalidPointInput(`${name}: the point cloud has no points`);
  if (count < limits.minPoints) {
    throw invalidPointInput(
      `${name}: ${count} points is fewer than the ${limits.minPoints} the point encoder needs ` +
        `(at least one point per group centre and per neighbour of a group)`,
      { count, minPoints: limits.minPoints },
    );
  }
  for (let i = 0; i < points.length; i++) {
    // A float64 beyond the float32 range arrives here as Infinity.
    const v = points[i] ?? Number.NaN;
    if (!Number.isFinite(v)) {
      throw invalidPointInput(
        `${name}: point ${Math.floor(i / 3)} has a non-finite ${'xyz'[i % 3] ?? '?'} coordinate (${v})`,
        { point: Math.floor(i / 3) },
      );
    }
  }
  return cloud;
}

const DECIMAL = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;
const SPECIAL_NUMBER = /^([-+]?)(nan|inf|infinity)$/i;

/**
 * A number as C's strtod / Python's float() read it, including `nan`, `inf` and `infinity`
 * (any case, signed), so such values reach {@link validatePointCloud} and get its clear error.
 * Returns undefined for anything that is not a number.
 */
export function parseCoordinate(token: string): number | undefined {
  if (DECIMAL.test(token)) return Number(token);
  const special = SPECIAL_NUMBER.exec(token);
  if (special === null) return undefined;
  if ((special[2] ?? '').toLowerCase() === 'nan') return Number.NaN;
  return special[1] === '-' ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
}

/** The fewest points a cloud needs to be grouped: one per centre, and a full group of neighbours. */
export function pointGroupingMinPoints(grouping: PointGrouping): number {
  return Math.max(grouping.numGroup, grouping.groupSize);
}
