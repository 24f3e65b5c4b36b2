import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { fromServiceError, grpcStatusName, ImageBindError, isImageBindError } from './image-bind-error';

describe('ImageBindError', () => {
  it('reads code, details and the platform trailers from a grpc-js ServiceError', () => {
    const metadata = new Metadata();
    metadata.set('ibllm-error-code', 'RATE_LIMITED');
    metadata.set('ibllm-error-field', 'apiKey');
    metadata.set('ibllm-retry-after-ms', '250');
    const cause = Object.assign(new Error('8 RESOURCE_EXHAUSTED: slow down'), {
      code: status.RESOURCE_EXHAUSTED,
      details: 'slow down',
      metadata,
    });
    const error = fromServiceError(cause, 'req-1');
    expect(error).toBeInstanceOf(Error);
    expect(isImageBindError(error)).toBe(true);
    expect(error).toMatchObject({
      name: 'ImageBindError',
      code: 'RESOURCE_EXHAUSTED',
      grpcCode: 8,
      details: 'slow down',
      domainCode: 'RATE_LIMITED',
      field: 'apiKey',
      retryAfterMs: 250,
      requestId: 'req-1',
      metadata,
      cause,
    });
    expect(error.message).toBe(
      'RESOURCE_EXHAUSTED: slow down (field apiKey, retry after 250 ms, request id req-1)',
    );
  });

  it('ignores a malformed retry hint and copes with errors that are not gRPC errors', () => {
    const metadata = new Metadata();
    metadata.set('ibllm-retry-after-ms', 'soon');
    expect(
      fromServiceError({ code: status.UNAVAILABLE, details: 'x', metadata }).retryAfterMs,
    ).toBeUndefined();
    const plain = fromServiceError(new Error('socket hang up'));
    expect(plain).toMatchObject({
      code: 'UNKNOWN',
      grpcCode: 2,
      details: 'socket hang up',
      domainCode: undefined,
    });
    expect(fromServiceError('weird').details).toBe('weird');
  });

  it('passes an ImageBindError through unchanged', () => {
    const original = ImageBindError.invalidArgument('bad', 'inputs');
    expect(fromServiceError(original)).toBe(original);
    expect(original).toMatchObject({ code: 'INVALID_ARGUMENT', grpcCode: 3, domainCode: 'INVALID_INPUT' });
  });

  it('names gRPC status codes, unknown ones as UNKNOWN', () => {
    expect(grpcStatusName(4)).toBe('DEADLINE_EXCEEDED');
    expect(grpcStatusName(14)).toBe('UNAVAILABLE');
    expect(grpcStatusName(99)).toBe('UNKNOWN');
  });
});
