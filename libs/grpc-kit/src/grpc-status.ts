import { Metadata, status as GrpcStatus, type StatusObject } from '@grpc/grpc-js';
import {
  DomainError,
  ERROR_CODE_TRAILER,
  ERROR_FIELD_TRAILER,
  ErrorCode,
  INTERNAL_MESSAGE,
  isErrorCode,
  RETRY_AFTER_TRAILER,
} from '@imagebind-llm/errors';

/**
 * The one mapping from domain codes to gRPC status codes. It lives with the gRPC runtime, not in
 * libs/errors, so libraries that only throw DomainErrors (preprocess, tokenizer) do not load
 * grpc-js. `satisfies Record<ErrorCode, ...>` makes the compiler reject a code without a status,
 * so the mapping stays exhaustive.
 */
export const GRPC_STATUS_BY_CODE = {
  INVALID_INPUT: GrpcStatus.INVALID_ARGUMENT,
  UNSUPPORTED_MEDIA: GrpcStatus.INVALID_ARGUMENT,
  PAYLOAD_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  CONTEXT_OVERFLOW: GrpcStatus.INVALID_ARGUMENT,
  NOT_FOUND: GrpcStatus.NOT_FOUND,
  ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  FAILED_PRECONDITION: GrpcStatus.FAILED_PRECONDITION,
  UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
  PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
  OVERLOADED: GrpcStatus.RESOURCE_EXHAUSTED,
  RATE_LIMITED: GrpcStatus.RESOURCE_EXHAUSTED,
  DEADLINE_EXCEEDED: GrpcStatus.DEADLINE_EXCEEDED,
  CANCELLED: GrpcStatus.CANCELLED,
  DEPENDENCY_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  MODEL_NOT_READY: GrpcStatus.UNAVAILABLE,
  NOT_IMPLEMENTED: GrpcStatus.UNIMPLEMENTED,
  INTERNAL: GrpcStatus.INTERNAL,
} as const satisfies Record<ErrorCode, GrpcStatus>;

/** The gRPC status a domain error is answered with. */
export function grpcStatusOf(error: DomainError): GrpcStatus {
  return GRPC_STATUS_BY_CODE[error.code];
}

/**
 * Turns any thrown value into the status a grpc-js handler reports. Domain errors keep their
 * message; anything else becomes INTERNAL with a generic message (the caller logs the cause).
 */
export function toGrpcStatus(error: unknown, requestId?: string): Partial<StatusObject> {
  const metadata = new Metadata();
  if (requestId !== undefined) metadata.set('x-request-id', requestId);
  if (error instanceof DomainError) {
    metadata.set(ERROR_CODE_TRAILER, error.code);
    if (typeof error.details.field === 'string') metadata.set(ERROR_FIELD_TRAILER, error.details.field);
    if (typeof error.details.retryAfterMs === 'number') {
      metadata.set(RETRY_AFTER_TRAILER, String(Math.ceil(error.details.retryAfterMs)));
    }
    return { code: grpcStatusOf(error), details: error.message, metadata };
  }
  metadata.set(ERROR_CODE_TRAILER, ErrorCode.Internal);
  const suffix = requestId === undefined ? '' : ` (request id ${requestId})`;
  return { code: GrpcStatus.INTERNAL, details: INTERNAL_MESSAGE + suffix, metadata };
}

/** Domain code a gRPC status implies when the peer did not send one (e.g. a proxy's error). */
const CODE_BY_GRPC_STATUS: Partial<Record<GrpcStatus, ErrorCode>> = {
  [GrpcStatus.INVALID_ARGUMENT]: ErrorCode.InvalidInput,
  [GrpcStatus.NOT_FOUND]: ErrorCode.NotFound,
  [GrpcStatus.ALREADY_EXISTS]: ErrorCode.AlreadyExists,
  [GrpcStatus.FAILED_PRECONDITION]: ErrorCode.FailedPrecondition,
  [GrpcStatus.UNAUTHENTICATED]: ErrorCode.Unauthenticated,
  [GrpcStatus.PERMISSION_DENIED]: ErrorCode.PermissionDenied,
  [GrpcStatus.RESOURCE_EXHAUSTED]: ErrorCode.Overloaded,
  [GrpcStatus.DEADLINE_EXCEEDED]: ErrorCode.DeadlineExceeded,
  [GrpcStatus.CANCELLED]: ErrorCode.Cancelled,
  [GrpcStatus.UNAVAILABLE]: ErrorCode.DependencyUnavailable,
  [GrpcStatus.UNIMPLEMENTED]: ErrorCode.NotImplemented,
};

interface GrpcErrorLike {
  code?: unknown;
  details?: unknown;
  message?: unknown;
  metadata?: unknown;
}

/**
 * Turns an error received from a downstream gRPC call back into a DomainError, so a service can
 * pass a downstream INVALID_ARGUMENT on to its own caller unchanged.
 */
export function fromGrpcError(error: unknown): DomainError {
  if (error instanceof DomainError) return error;
  const e = (typeof error === 'object' && error !== null ? error : {}) as GrpcErrorLike;
  const grpcCode = typeof e.code === 'number' ? (e.code as GrpcStatus) : GrpcStatus.UNKNOWN;
  let code: ErrorCode = CODE_BY_GRPC_STATUS[grpcCode] ?? ErrorCode.Internal;
  let field: string | undefined;
  if (e.metadata instanceof Metadata) {
    const sent = e.metadata.get(ERROR_CODE_TRAILER)[0];
    if (isErrorCode(sent)) code = sent;
    const sentField = e.metadata.get(ERROR_FIELD_TRAILER)[0];
    if (typeof sentField === 'string') field = sentField;
  }
  const message =
    typeof e.details === 'string' && e.details !== ''
      ? e.details
      : typeof e.message === 'string'
        ? e.message
        : 'downstream call failed';
  return new DomainError(code, message, field === undefined ? {} : { field }, { cause: error });
}
