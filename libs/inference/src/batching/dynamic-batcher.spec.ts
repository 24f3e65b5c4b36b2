import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';
import { systemClock, type BatcherClock } from './batcher-clock';
import { DynamicBatcher, type BatchEvent, type DynamicBatcherOptions } from './dynamic-batcher';

const T0 = 1_700_000_000_000;

/** A clock that moves only when the test says so; timers fire in due order, ties in creation order. */
class ManualClock implements BatcherClock {
  private time = T0;
  private nextId = 1;
  private readonly timers = new Map<number, { due: number; callback: () => void }>();

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { due: this.time + Math.max(0, delayMs), callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get pendingTimers(): number {
    return this.timers.size;
  }

  advance(ms: number): void {
    const target = this.time + ms;
    // A scheduler that keeps re-arming a timer for the same instant would spin forever: fail instead.
    for (let fired = 0; ; fired++) {
      if (fired > 10_000) throw new Error('ManualClock: more than 10000 timers fired in one advance');
      let nextId: number | undefined;
      let nextDue = Infinity;
      for (const [id, timer] of this.timers) {
        if (timer.due <= target && timer.due < nextDue) {
          nextId = id;
          nextDue = timer.due;
        }
      }
      if (nextId === undefined) break;
      const timer = this.timers.get(nextId)!;
      this.timers.delete(nextId);
      this.time = timer.due;
      timer.callback();
    }
    this.time = target;
  }
}

interface Call<Item, Result> {
  readonly items: readonly Item[];
  readonly signal: AbortSignal;
  resolve(results: readonly Result[]): void;
  reject(error: unknown): void;
}

/** An execute whose batches stay pending until the test settles them. */
function controlledExecute<Item, Result>() {
  const calls: Call<Item, Result>[] = [];
  const execute = (items: readonly Item[], signal: AbortSignal) =>
    new Promise<readonly Result[]>((resolve, reject) => {
      calls.push({ items: [...items], signal, resolve, reject });
    });
  return { calls, execute };
}

function call<Item, Result>(calls: Call<Item, Result>[], index: number): Call<Item, Result> {
  const found = calls[index];
  if (found === undefined) throw new Error(`execute was called ${calls.length} times, wanted call #${index}`);
  return found;
}

interface Tracked<Result> {
  state: 'pending' | 'resolved' | 'rejected';
  value?: Result;
  error?: unknown;
}

/** Observes a promise without awaiting it, so a test can check what has settled so far. */
function track<Result>(promise: Promise<Result>): Tracked<Result> {
  const tracked: Tracked<Result> = { state: 'pending' };
  promise.then(
    (value) => {
      tracked.state = 'resolved';
      tracked.value = value;
    },
    (error: unknown) => {
      tracked.state = 'rejected';
      tracked.error = error;
    },
  );
  return tracked;
}

/** Lets every pending promise reaction run (a macrotask turn; no clock time passes). */
async function flush(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
}

function domainError(tracked: Tracked<unknown>): DomainError {
  expect(tracked.state).toBe('rejected');
  expect(tracked.error).toBeInstanceOf(DomainError);
  return tracked.error as DomainError;
}

type Options = Omit<DynamicBatcherOptions<string, string>, 'execute' | 'clock'>;

function setup(options: Partial<Options> = {}) {
  const clock = new ManualClock();
  const { calls, execute } = controlledExecute<string, string>();
  const events: BatchEvent[] = [];
  const batcher = new DynamicBatcher<string, string>({
    name: 'encoder-test',
    maxBatchSize: 4,
    maxQueueDelayMs: 10,
    maxQueueSize: 8,
    onBatch: (event) => events.push(event),
    ...options,
    execute,
    clock,
  });
  const submit = (item: string, submitOptions?: Parameters<typeof batcher.submit>[1]) =>
    track(batcher.submit(item, submitOptions));
  const answer = (index: number) => {
    const c = call(calls, index);
    c.resolve(c.items.map((item) => `r:${item}`));
  };
  return { clock, calls, events, batcher, submit, answer };
}

describe('DynamicBatcher dispatch', () => {
  it('dispatches a full batch at once, without waiting for the queue delay', () => {
    const { calls, submit, clock } = setup();
    for (const item of ['a', 'b', 'c']) submit(item);
    expect(calls).toHaveLength(0);
    submit('d');
    expect(calls).toHaveLength(1);
    expect(call(calls, 0).items).toEqual(['a', 'b', 'c', 'd']);
    expect(clock.now()).toBe(T0);
  });

  it('dispatches a partial batch exactly maxQueueDelayMs after its oldest item arrived', () => {
    const { calls, submit, clock } = setup();
    submit('a');
    clock.advance(4);
    submit('b'); // joins; the delay still counts from 'a'
    clock.advance(5);
    expect(calls).toHaveLength(0);
    clock.advance(1);
    expect(calls).toHaveLength(1);
    expect(call(calls, 0).items).toEqual(['a', 'b']);
    expect(clock.now()).toBe(T0 + 10);
  });

  it('counts item sizes: a 15-clip video and one image fill a batch of 16', () => {
    const { calls, submit, batcher } = setup({ maxBatchSize: 16, maxQueueSize: 32 });
    submit('video', { size: 15 });
    expect(calls).toHaveLength(0);
    expect(batcher.stats().queuedUnits).toBe(15);
    submit('image');
    expect(calls).toHaveLength(1);
    expect(call(calls, 0).items).toEqual(['video', 'image']);
  });

  it('dispatches at once when the next item cannot join, and never reorders to pack', async () => {
    const { calls, submit, clock } = setup({ maxBatchSize: 16, maxQueueSize: 48 });
    submit('video1', { size: 15 });
    submit('video2', { size: 15 }); // cannot join video1: waiting longer could not fill it
    expect(calls).toHaveLength(1);
    expect(call(calls, 0).items).toEqual(['video1']);
    submit('image'); // fits behind video2, but only one batch may run
    call(calls, 0).resolve(['r']);
    await flush();
    expect(calls).toHaveLength(2);
    expect(call(calls, 1).items).toEqual(['video2', 'image']);
    expect(clock.now()).toBe(T0);
  });

  it('refuses an item larger than maxBatchSize with INVALID_INPUT instead of running it alone', async () => {
    const { calls, submit, batcher } = setup({ maxBatchSize: 16, maxQueueSize: 32 });
    const big = submit('long video', { size: 17 });
    const zero = submit('nothing', { size: 0 });
    await flush();
    const error = domainError(big);
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(error.details).toMatchObject({ field: 'size', size: 17, maxBatchSize: 16 });
    expect(error.message).toContain('at most 16');
    expect(domainError(zero).code).toBe(ErrorCode.InvalidInput);
    expect(calls).toHaveLength(0);
    expect(batcher.stats().queuedItems).toBe(0);
  });

  it('returns each caller its own result, in item order, whichever batch finishes first', async () => {
    const { calls, submit } = setup({ maxBatchSize: 2, maxConcurrentBatches: 2 });
    const tracked = ['a', 'b', 'c', 'd'].map((item) => submit(item));
    expect(calls.map((c) => c.items)).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    call(calls, 1).resolve(['C', 'D']);
    await flush();
    expect(tracked.map((t) => t.state)).toEqual(['pending', 'pending', 'resolved', 'resolved']);
    call(calls, 0).resolve(['A', 'B']);
    await flush();
    expect(tracked.map((t) => t.value)).toEqual(['A', 'B', 'C', 'D']);
  });

  it('never runs more than maxConcurrentBatches executions, and an overdue batch starts when a slot frees', async () => {
    const { calls, submit, answer, batcher, clock } = setup({
      maxBatchSize: 2,
      maxConcurrentBatches: 2,
      maxQueueSize: 8,
    });
    for (const item of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) submit(item);
    expect(calls).toHaveLength(2);
    expect(batcher.stats()).toMatchObject({ inFlightBatches: 2, queuedUnits: 3 });
    clock.advance(100); // far past the queue delay: still no third execution
    expect(calls).toHaveLength(2);
    answer(0);
    await flush();
    expect(calls).toHaveLength(3);
    expect(call(calls, 2).items).toEqual(['e', 'f']);
    expect(batcher.stats().inFlightBatches).toBe(2);
    answer(1);
    await flush();
    // 'g' alone is overdue (it arrived 100 ms ago), so it goes without another delay.
    expect(calls).toHaveLength(4);
    expect(call(calls, 3).items).toEqual(['g']);
  });
});

describe('DynamicBatcher failures', () => {
  it('fails exactly the items of a batch whose execute rejects, with that error', async () => {
    const { calls, submit, answer } = setup({ maxBatchSize: 2, maxConcurrentBatches: 2 });
    const tracked = ['a', 'b', 'c', 'd'].map((item) => submit(item));
    const boom = new Error('session exploded');
    call(calls, 0).reject(boom);
    answer(1);
    await flush();
    expect(tracked.map((t) => t.state)).toEqual(['rejected', 'rejected', 'resolved', 'resolved']);
    expect(tracked[0]!.error).toBe(boom);
    expect(tracked[1]!.error).toBe(boom);
    expect(tracked[3]!.value).toBe('r:d');
  });

  it('treats a synchronous throw from execute like a rejection of that batch only', async () => {
    const clock = new ManualClock();
    const boom = new Error('bad tensor');
    let n = 0;
    const batcher = new DynamicBatcher<string, string>({
      maxBatchSize: 1,
      maxQueueDelayMs: 10,
      maxQueueSize: 4,
      clock,
      execute: (items) => {
        n++;
        if (n === 1) throw boom;
        return Promise.resolve(items.map((item) => item.toUpperCase()));
      },
    });
    const first = track(batcher.submit('a'));
    const second = track(batcher.submit('b'));
    await flush();
    expect(first.error).toBe(boom);
    expect(second.value).toBe('B');
  });

  it('fails a batch whose execute returns the wrong number of results with INTERNAL', async () => {
    const { calls, submit, events, batcher } = setup({ maxBatchSize: 2 });
    const tracked = [submit('a'), submit('b')];
    call(calls, 0).resolve(['only one']);
    await flush();
    for (const t of tracked) {
      const error = domainError(t);
      expect(error.code).toBe(ErrorCode.Internal);
      expect(error.message).toContain('1 results for a batch of 2');
    }
    expect(events[0]!.error).toBe(tracked[0]!.error);
    expect(batcher.stats().totals).toMatchObject({ failed: 2, completed: 0 });
  });
});

describe('DynamicBatcher overload', () => {
  it('rejects at once with OVERLOADED (RESOURCE_EXHAUSTED) and a retryAfterMs hint once maxQueueSize units wait', async () => {
    const { calls, submit, batcher } = setup({ maxBatchSize: 4, maxQueueSize: 8, maxQueueDelayMs: 10 });
    for (let i = 0; i < 4; i++) submit(`running${i}`); // one executing batch, not counted as waiting
    for (let i = 0; i < 7; i++) submit(`queued${i}`);
    expect(batcher.stats().queuedUnits).toBe(7);
    const video = submit('video', { size: 2 }); // 7 + 2 > 8
    const image = submit('image'); // 7 + 1 = 8 still fits
    await flush();
    const error = domainError(video);
    expect(error.code).toBe(ErrorCode.Overloaded); // RESOURCE_EXHAUSTED on the wire
    // No execute time observed yet: the hint is the queue delay.
    expect(error.details.retryAfterMs).toBe(10);
    expect(error.message).toContain('7 of 8 units');
    expect(image.state).toBe('pending');
    expect(calls).toHaveLength(1); // queued0..3 make a full batch, but the one slot is taken
  });

  it('bases retryAfterMs on the observed execute time and the queued batches', async () => {
    const { calls, submit, clock } = setup({ maxBatchSize: 4, maxQueueSize: 8, maxQueueDelayMs: 10 });
    for (let i = 0; i < 4; i++) submit(`warm${i}`);
    clock.advance(40);
    call(calls, 0).resolve(['1', '2', '3', '4']);
    await flush();
    for (let i = 0; i < 12; i++) submit(`x${i}`); // 4 executing, 8 waiting = 2 batches
    const refused = submit('one too many');
    await flush();
    // 2 queued batches × 1 slot × 40 ms per batch.
    expect(domainError(refused).details.retryAfterMs).toBe(80);
  });

  it('stays bounded under ten times its capacity: refusals settle immediately and hold nothing', async () => {
    const { calls, submit, batcher, clock, answer } = setup({
      maxBatchSize: 4,
      maxQueueSize: 8,
      maxQueueDelayMs: 10,
    });
    const tracked: Tracked<string>[] = [];
    let maxQueued = 0;
    for (let i = 0; i < 120; i++) {
      tracked.push(submit(`item${i}`, { deadline: T0 + 1_000 }));
      maxQueued = Math.max(maxQueued, batcher.stats().queuedUnits);
    }
    await flush(); // no clock time passes
    expect(maxQueued).toBe(8);
    const stats = batcher.stats();
    expect(stats.queuedUnits).toBe(8);
    expect(stats.totals.overloaded).toBe(120 - 4 - 8);
    expect(tracked.filter((t) => t.state === 'rejected')).toHaveLength(108);
    expect(tracked.slice(12).every((t) => domainError(t).code === ErrorCode.Overloaded)).toBe(true);
    // Only the queued items hold a deadline timer; the executing batch and the refused ones hold none.
    expect(clock.pendingTimers).toBe(8);
    expect(calls).toHaveLength(1);
    answer(0);
    await flush();
    answer(1);
    await flush();
    answer(2);
    await flush();
    expect(tracked.filter((t) => t.state === 'resolved')).toHaveLength(12);
    expect(batcher.stats()).toMatchObject({ queuedUnits: 0, inFlightBatches: 0 });
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('DynamicBatcher deadlines and cancellation', () => {
  it('drops an item whose deadline passes while queued with DEADLINE_EXCEEDED', async () => {
    const { calls, submit, clock, batcher } = setup({ maxQueueDelayMs: 10 });
    const late = submit('late', { deadline: T0 + 5 });
    const patient = submit('patient', { deadline: T0 + 500 });
    clock.advance(5);
    await flush();
    expect(domainError(late).code).toBe(ErrorCode.DeadlineExceeded);
    expect(batcher.stats()).toMatchObject({ queuedItems: 1, queuedUnits: 1 });
    clock.advance(5);
    expect(call(calls, 0).items).toEqual(['patient']);
    expect(patient.state).toBe('pending');
    expect(batcher.stats().totals.expired).toBe(1);
  });

  it('refuses an item whose deadline has already passed, and never dispatches one at its deadline', async () => {
    const { calls, submit, clock } = setup({ maxQueueDelayMs: 10 });
    const already = submit('already', { deadline: T0 });
    submit('on time');
    // Due at the same instant as the dispatch timer armed for 'on time', which fires first.
    const atDispatch = submit('at dispatch', { deadline: T0 + 10 });
    clock.advance(10);
    await flush();
    expect(domainError(already).code).toBe(ErrorCode.DeadlineExceeded);
    expect(domainError(atDispatch).code).toBe(ErrorCode.DeadlineExceeded);
    expect(call(calls, 0).items).toEqual(['on time']);
  });

  it('removes an item aborted while queued with CANCELLED, and the batch goes without it', async () => {
    const { calls, submit, clock, batcher } = setup({ maxQueueDelayMs: 10 });
    const controller = new AbortController();
    const gone = submit('gone', { signal: controller.signal });
    const kept = submit('kept');
    controller.abort(new Error('client hung up'));
    await flush();
    const error = domainError(gone);
    expect(error.code).toBe(ErrorCode.Cancelled);
    expect(batcher.stats().queuedItems).toBe(1);
    clock.advance(10);
    expect(call(calls, 0).items).toEqual(['kept']);
    expect(kept.state).toBe('pending');
  });

  it('re-times the partial batch from the new oldest item after the oldest is cancelled', () => {
    const { calls, submit, clock } = setup({ maxQueueDelayMs: 10 });
    const controller = new AbortController();
    submit('first', { signal: controller.signal });
    clock.advance(6);
    submit('second');
    controller.abort();
    clock.advance(4); // 'first' would have been due now
    expect(calls).toHaveLength(0);
    clock.advance(6);
    expect(call(calls, 0).items).toEqual(['second']);
  });

  it('never queues an already-aborted item', async () => {
    const { calls, submit, clock, batcher } = setup();
    const gone = submit('gone', { signal: AbortSignal.abort() });
    clock.advance(10);
    await flush();
    expect(domainError(gone).code).toBe(ErrorCode.Cancelled);
    expect(calls).toHaveLength(0);
    expect(batcher.stats().totals.cancelled).toBe(1);
  });

  it('discards the result of an item aborted while executing, and aborts execute once nobody waits', async () => {
    const { calls, submit, batcher, answer, clock } = setup({ maxBatchSize: 2, maxQueueSize: 4 });
    const a = new AbortController();
    const b = new AbortController();
    const first = submit('a', { signal: a.signal });
    const second = submit('b', { signal: b.signal });
    const next = submit('c');
    const execution = call(calls, 0);
    a.abort();
    await flush();
    expect(domainError(first).code).toBe(ErrorCode.Cancelled);
    expect(execution.signal.aborted).toBe(false); // 'b' still wants its result
    b.abort();
    await flush();
    expect(domainError(second).code).toBe(ErrorCode.Cancelled);
    expect(execution.signal.aborted).toBe(true);
    // The device is still busy until execute settles: the slot stays taken.
    expect(batcher.stats().inFlightBatches).toBe(1);
    expect(calls).toHaveLength(1);
    execution.resolve(['late a', 'late b']);
    await flush();
    expect(first.error).toBeInstanceOf(DomainError); // the late results went nowhere
    expect(calls).toHaveLength(1); // 'c' alone is a partial batch: it waits out its delay
    clock.advance(10);
    expect(calls).toHaveLength(2);
    answer(1);
    await flush();
    expect(next.value).toBe('r:c');
    expect(batcher.stats().totals).toMatchObject({ cancelled: 2, completed: 1 });
  });
});

describe('DynamicBatcher close', () => {
  it('with drain: refuses new work, dispatches the queue without waiting, resolves after the last batch', async () => {
    const { calls, submit, batcher, clock, answer } = setup({ maxBatchSize: 2, maxQueueSize: 4 });
    const tracked = ['a', 'b', 'c'].map((item) => submit(item));
    expect(calls).toHaveLength(1);
    let closed = false;
    const closing = batcher.close({ drain: true }).then(() => {
      closed = true;
    });
    const refused = submit('late');
    await flush();
    const error = domainError(refused);
    expect(error.code).toBe(ErrorCode.DependencyUnavailable);
    expect(error.message).toContain('shutting down');
    answer(0);
    await flush();
    expect(call(calls, 1).items).toEqual(['c']); // no 10 ms delay while draining
    expect(clock.now()).toBe(T0);
    expect(closed).toBe(false);
    answer(1);
    await closing;
    expect(tracked.map((t) => t.value)).toEqual(['r:a', 'r:b', 'r:c']);
    expect(batcher.stats()).toMatchObject({ closed: true, queuedItems: 0, inFlightBatches: 0 });
    expect(clock.pendingTimers).toBe(0);
  });

  it('without drain: rejects the queue with DEPENDENCY_UNAVAILABLE, lets executing batches finish', async () => {
    const { calls, submit, batcher, clock, answer } = setup({ maxBatchSize: 2, maxQueueSize: 4 });
    const tracked = ['a', 'b', 'c'].map((item) => submit(item, { deadline: T0 + 1_000 }));
    let closed = false;
    const closing = batcher.close({ drain: false }).then(() => {
      closed = true;
    });
    await flush();
    expect(domainError(tracked[2]!).code).toBe(ErrorCode.DependencyUnavailable);
    expect(tracked[0]!.state).toBe('pending');
    expect(closed).toBe(false);
    expect(clock.pendingTimers).toBe(0);
    answer(0);
    await closing;
    expect(tracked.slice(0, 2).map((t) => t.value)).toEqual(['r:a', 'r:b']);
    expect(calls).toHaveLength(1);
    expect(batcher.stats().totals).toMatchObject({ completed: 2, rejected: 1 });
  });

  it('resolves at once when idle', async () => {
    const { batcher } = setup();
    await batcher.close({ drain: true });
    expect(batcher.stats().closed).toBe(true);
  });
});

describe('DynamicBatcher observability', () => {
  it('reports each batch to onBatch and keeps stats that account for every submit', async () => {
    const { calls, submit, batcher, clock, events } = setup({ maxBatchSize: 4, maxQueueSize: 8 });
    submit('video', { size: 3 });
    clock.advance(2);
    submit('image');
    expect(batcher.stats()).toMatchObject({ queuedItems: 0, queuedUnits: 0, inFlightBatches: 1 });
    clock.advance(25);
    call(calls, 0).resolve(['v', 'i']);
    await flush();
    submit('lonely');
    const controller = new AbortController();
    submit('quitter', { signal: controller.signal });
    controller.abort();
    expect(batcher.stats()).toMatchObject({ queuedItems: 1, queuedUnits: 1 });
    clock.advance(10);
    const boom = new Error('boom');
    clock.advance(7);
    call(calls, 1).reject(boom);
    await flush();
    expect(events).toEqual([
      { size: 2, units: 4, queueDelayMs: 2, executeMs: 25 },
      { size: 1, units: 1, queueDelayMs: 10, executeMs: 7, error: boom },
    ]);
    expect(batcher.stats()).toEqual({
      queuedItems: 0,
      queuedUnits: 0,
      inFlightBatches: 0,
      closed: false,
      totals: {
        submitted: 4,
        completed: 2,
        failed: 1,
        overloaded: 0,
        expired: 0,
        cancelled: 1,
        rejected: 0,
        batches: 2,
      },
    });
  });

  it('keeps batching when onBatch throws', async () => {
    const clock = new ManualClock();
    const batcher = new DynamicBatcher<number, number>({
      maxBatchSize: 1,
      maxQueueDelayMs: 0,
      maxQueueSize: 2,
      clock,
      execute: (items) => Promise.resolve(items.map((n) => n * 2)),
      onBatch: () => {
        throw new Error('metrics broke');
      },
    });
    await expect(batcher.submit(1)).resolves.toBe(2);
    await expect(batcher.submit(2)).resolves.toBe(4);
  });

  it('refuses an inconsistent configuration at construction', () => {
    const base = { maxBatchSize: 4, maxQueueDelayMs: 5, maxQueueSize: 8, execute: () => Promise.resolve([]) };
    expect(() => new DynamicBatcher({ ...base, maxBatchSize: 0 })).toThrow(RangeError);
    expect(() => new DynamicBatcher({ ...base, maxQueueSize: 3 })).toThrow(/maxQueueSize/);
    expect(() => new DynamicBatcher({ ...base, maxQueueDelayMs: -1 })).toThrow(/maxQueueDelayMs/);
    expect(() => new DynamicBatcher({ ...base, maxConcurrentBatches: 1.5 })).toThrow(/maxConcurrentBatches/);
  });
});

describe('DynamicBatcher with the system clock (smoke)', () => {
  it('batches and answers with real timers', async () => {
    const batcher = new DynamicBatcher<number, number>({
      maxBatchSize: 8,
      maxQueueDelayMs: 1,
      maxQueueSize: 16,
      clock: systemClock,
      execute: (items) => Promise.resolve(items.map((n) => n + 1)),
    });
    await expect(Promise.all([batcher.submit(1), batcher.submit(2)])).resolves.toEqual([2, 3]);
    await batcher.close({ drain: true });
  });
});
