import { DomainError, ErrorCode } from '@imagebind-llm/errors';

/** Where a replica's models are in their lifecycle (GetModelStatus reports it). */
export type ModelSlotState = 'loading' | 'ready' | 'failed' | 'closed';

/**
 * Holds a service's runtime once it has loaded. The gRPC server listens (and answers health
 * checks) while models load, so handlers take the runtime from here and get MODEL_NOT_READY
 * (UNAVAILABLE, retryable elsewhere) until it is ready.
 */
export class ModelSlot<R> {
  private runtime: R | undefined;
  private currentState: ModelSlotState = 'loading';
  private failure: string | undefined;

  /** A slot that is ready from the start (in-process hosting, tests). */
  static ready<R>(runtime: R): ModelSlot<R> {
    const slot = new ModelSlot<R>();
    slot.fill(runtime);
    return slot;
  }

  get state(): ModelSlotState {
    return this.currentState;
  }

  /** Why loading or inference failed, when it did. */
  get failureMessage(): string | undefined {
    return this.failure;
  }

  /** The runtime, if it is loaded (whatever the state now is). */
  get current(): R | undefined {
    return this.runtime;
  }

  /** The runtime for a request; throws a retryable error unless ready. */
  get(): R {
    if (this.currentState === 'ready' && this.runtime !== undefined) return this.runtime;
    switch (this.currentState) {
      case 'loading':
      case 'ready':
        throw new DomainError(
          ErrorCode.ModelNotReady,
          'the models are still loading; retry shortly or on another replica',
        );
      case 'failed':
        throw new DomainError(
          ErrorCode.ModelNotReady,
          `the models failed (${this.failure ?? 'unknown error'}); this replica is restarting, retry on another`,
        );
      case 'closed':
        throw DomainError.unavailable('this replica is shutting down; retry on another replica');
    }
  }

  fill(runtime: R): void {
    this.runtime = runtime;
    this.currentState = 'ready';
  }

  fail(message: string): void {
    this.failure = message;
    this.currentState = 'failed';
  }

  close(): void {
    this.currentState = 'closed';
  }
}
