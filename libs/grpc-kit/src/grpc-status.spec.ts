import { Metadata, status } from '@grpc/grpc-js';
import {
  DomainError,
  ERROR_CODE_TRAILER,
  ERROR_FIELD_TRAILER,
  ErrorCode,
  INTERNAL_MESSAGE,
  RETRY_AFTER_TRAILER,
} from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';
import { fromGrpcError, GRPC_STATUS_BY_CODE, grpcStatusOf, toGrpcStatus } from './grpc-status';

describe('domain code → gRPC status', () => {
  it('maps every domain code to a gRPC status', () => {
    for (const code of Object.values(ErrorCode)) {
      expect(GRPC_STATUS_BY_CODE[code], code).toBeTypeOf('number');
    }
    expect(Object.keys(GRPC_STATUS_BY_CODE).sort()).toEqual(Object.values(ErrorCode).sort());
  });

  it('sends bad input to INVALID_ARGUMENT and overload to RESOURCE_EXHAUSTED, never OK or UNKNOWN', () => {
    expect(GRPC_STATUS_BY_CODE.INVALID_INPUT).toBe(status.INVALID_ARGUMENT);
    expect(GRPC_STATUS_BY_CODE.UNSUPPORTED_MEDIA).toBe(status.INVALID_ARGUMENT);
    expect(GRPC_STATUS_BY_CODE.CONTEXT_OVERFLOW).toBe(status.INVALID_ARGUMENT);
    expect(GRPC_STATUS_BY_CODE.OVERLOADED).toBe(status.RESOURCE_EXHAUSTED);
    expect(GRPC_STATUS_BY_CODE.PAYLOAD_TOO_LARGE).toBe(status.RESOURCE_EXHAUSTED);
    expect(GRPC_STATUS_BY_CODE.MODEL_NOT_READY).toBe(status.UNAVAILABLE);
    expect(grpcStatusOf(DomainError.unavailable('down'))).toBe(status.UNAVAILABLE);
    for (const s of Object.values(GRPC_STATUS_BY_CODE)) {
      expect([status.OK, status.UNKNOWN]).not.toContain(s);
    }
  });
});

describe('toGrpcStatus', () => {
  it('keeps a domain error message and puts code, field and retry hint in trailers', () => {
    const error = new DomainError(ErrorCode.Overloaded, 'queue full', {
      field: 'inputs',
      retryAfterMs: 12.2,
    });
    const s = toGrpcStatus(error, 'req-1');
    expect(s.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(s.details).toBe('queue full');
    expect(s.metadata?.get(ERROR_CODE_TRAILER)).toEqual(['OVERLOADED']);
    expect(s.metadata?.get(ERROR_FIELD_TRAILER)).toEqual(['inputs']);
    expect(s.metadata?.get(RETRY_AFTER_TRAILER)).toEqual(['13']);
    expect(s.metadata?.get('x-request-id')).toEqual(['req-1']);
  });

  it('hides the message of anything that is not a domain error', () => {
    const s = toGrpcStatus(new TypeError('secret path /etc/x is broken'), 'req-2');
    expect(s.code).toBe(status.INTERNAL);
    expect(s.details).toContain(INTERNAL_MESSAGE);
    expect(s.details).toContain('req-2');
    expect(s.details).not.toContain('secret');
  });
});

describe('fromGrpcError', () => {
  it('restores the domain code and field a peer sent in its trailers', () => {
    const metadata = new Metadata();
    metadata.set(ERROR_CODE_TRAILER, 'CONTEXT_OVERFLOW');
    metadata.set(ERROR_FIELD_TRAILER, 'instruction');
    const e = fromGrpcError({ code: status.INVALID_ARGUMENT, details: 'prompt too long', metadata });
    expect(e.code).toBe(ErrorCode.ContextOverflow);
    expect(e.details.field).toBe('instruction');
    expect(e.message).toBe('prompt too long');
  });

  it('derives a code from the status when the peer sent none', () => {
    expect(fromGrpcError({ code: status.UNAVAILABLE, details: 'connection refused' }).code).toBe(
      ErrorCode.DependencyUnavailable,
    );
    expect(fromGrpcError({ code: status.DATA_LOSS }).code).toBe(ErrorCode.Internal);
    expect(fromGrpcError('garbage').code).toBe(ErrorCode.Internal);
  });

  it('ignores a trailer that is not one of our codes', () => {
    const metadata = new Metadata();
    metadata.set(ERROR_CODE_TRAILER, 'DROP TABLE');
    expect(fromGrpcError({ code: status.NOT_FOUND, metadata }).code).toBe(ErrorCode.NotFound);
  });
});
