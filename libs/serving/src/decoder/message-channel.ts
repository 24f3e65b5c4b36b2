/**
 * A one-reader queue that turns callbacks (the engine's onToken, its final result) into an async
 * iterable a streaming handler can `yield*`. It never blocks the producer: the engine must not
 * wait for a slow client, and one sequence holds at most its token budget here.
 */
export class MessageChannel<T> {
  private readonly items: T[] = [];
  private closed = false;
  private failure: { readonly error: unknown } | undefined;
  private wake: (() => void) | undefined;

  push(item: T): void {
    if (this.closed) return;
    this.items.push(item);
    this.notify();
  }

  /** No more items; the reader finishes once it has taken what is queued. */
  end(): void {
    this.closed = true;
    this.notify();
  }

  /** Ends the reader with `error` as soon as it has taken what is queued. The first failure wins. */
  fail(error: unknown): void {
    if (this.closed) return;
    this.failure = { error };
    this.closed = true;
    this.notify();
  }

  async *drain(): AsyncGenerator<T, void, undefined> {
    for (;;) {
      const next = this.items.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.failure !== undefined) throw this.failure.error;
      if (this.closed) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
