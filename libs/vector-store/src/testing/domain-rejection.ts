import { DomainError } from '@imagebind-llm/errors';
import { expect } from 'vitest';

/** Awaits a promise that must reject with a DomainError and returns the error for code/message checks. */
export async function domainRejection(promise: Promise<unknown>): Promise<DomainError> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DomainError);
  return error as DomainError;
}
