/**
 * Loads each key once even when many callers ask at the same time (sessions load once and are
 * shared). A failed load is not cached, so the next caller retries it.
 */
export class SingleFlight<K, V> {
  private readonly inFlight = new Map<K, Promise<V>>();

  constructor(private readonly load: (key: K) => Promise<V>) {}

  // Returns the shared promise itself (not an async wrapper), so callers await the one load.
  // eslint-disable-next-line @typescript-eslint/promise-function-async
  get(key: K): Promise<V> {
    const existing = this.inFlight.get(key);
    if (existing !== undefined) return existing;
    const promise = this.load(key);
    this.inFlight.set(key, promise);
    promise.catch(() => {
      if (this.inFlight.get(key) === promise) this.inFlight.delete(key);
    });
    return promise;
  }

  /** Keys whose load has started (settled or not). */
  keys(): K[] {
    return [...this.inFlight.keys()];
  }
}
