/**
 * The time source and timer a DynamicBatcher schedules with. Injected so that tests drive a manual
 * clock and never sleep (STYLE.md "Scheduling apart from execution").
 *
 * `now()` is epoch milliseconds because request deadlines arrive as epoch milliseconds (gRPC
 * deadlines converted by the controller); timers only ever need relative delays.
 */
export interface BatcherClock {
  /** Epoch milliseconds. */
  now(): number;
  /** Runs `callback` once after `delayMs`; the returned handle cancels it. */
  setTimeout(callback: () => void, delayMs: number): unknown;
  /** Cancels a timer from `setTimeout`; unknown or already-fired handles are ignored. */
  clearTimeout(handle: unknown): void;
}

/** Wall clock and Node timers: what a service uses in production. */
export const systemClock: BatcherClock = {
  now: () => Date.now(),
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => {
    clearTimeout(handle as NodeJS.Timeout);
  },
};
