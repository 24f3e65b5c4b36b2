import { DomainError } from '@imagebind-llm/errors';

/** An error class to expect: `DomainError`, the SDK's `ImageBindError`, ... */
export type ErrorClass<E extends Error> = abstract new (...args: never[]) => E;

/** The `type` error `fn` throws; anything else it throws is rethrown, and not throwing fails. */
export function errorOf<E extends Error>(type: ErrorClass<E>, fn: () => unknown): E {
  try {
    fn();
  } catch (error) {
    if (error instanceof type) return error;
    throw error;
  }
  throw new Error(`expected a thrown ${type.name}, but nothing was thrown`);
}

/** The DomainError `fn` throws; anything else it throws is rethrown, and not throwing fails. */
export function domainErrorOf(fn: () => unknown): DomainError {
  return errorOf(DomainError, fn);
}

/** The DomainError `work` rejects with; any other rejection is rethrown, and fulfilling fails. */
export async function domainRejectionOf(work: Promise<unknown>): Promise<DomainError> {
  try {
    await work;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error('expected a rejection with a DomainError, but the promise fulfilled');
}
