import { describe, expect, it } from 'vitest';
import { DomainError, ErrorCode, HTTP_STATUS_BY_CODE, isErrorCode } from './index';

describe('error code mapping', () => {
  it('maps every domain code to an HTTP error status', () => {
    for (const code of Object.values(ErrorCode)) {
      expect(HTTP_STATUS_BY_CODE[code], code).toBeGreaterThanOrEqual(400);
    }
    expect(Object.keys(HTTP_STATUS_BY_CODE).sort()).toEqual(Object.values(ErrorCode).sort());
    expect(DomainError.invalidInput('bad').httpStatus).toBe(400);
    expect(DomainError.overloaded('busy').httpStatus).toBe(503);
  });

  it('recognises only its own codes', () => {
    expect(isErrorCode('INVALID_INPUT')).toBe(true);
    expect(isErrorCode('invalid_input')).toBe(false);
    expect(isErrorCode(3)).toBe(false);
  });
});
