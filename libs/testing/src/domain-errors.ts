import { DomainError } from '@imagebind-llm/errors';

/** The DomainError `fn` throws; anything else it throws is rethrown, and not throwing fails. */
export function domainErrorOf(fn: () => unknown): DomainError {
  try {
    fn();
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error('expected a DomainError, but nothing was thrown');
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
