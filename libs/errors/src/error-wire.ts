// How a DomainError travels, by name only: these are the wire names every transport and client
// agree on. The gRPC status mapping that writes and reads them lives in libs/grpc-kit
// (grpc-status.ts), so this library needs no gRPC runtime.

/** Trailer carrying the stable domain code next to the gRPC status. */
export const ERROR_CODE_TRAILER = 'ibllm-error-code';
/** Trailer carrying the offending field path, when known. */
export const ERROR_FIELD_TRAILER = 'ibllm-error-field';
/** Trailer carrying a retry hint in milliseconds, when known. */
export const RETRY_AFTER_TRAILER = 'ibllm-retry-after-ms';

/** Message sent for errors that are not DomainErrors: internals never leak to clients. */
export const INTERNAL_MESSAGE = 'internal error; the server logged the details under this request id';
