import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { BatchEvent, HostTensor } from '@imagebind-llm/inference';
import { describe, expect, it } from 'vitest';
import { RowBatchedModel, type BatcherSettings, type RowSlice } from './row-batched-model';
import { fakeRowSession, type FakeRowSession } from './testing/fake-row-session';

const PER_ROW = 3;

/** `rows` rows of PER_ROW float32 values, row r of request `tag` holding tag·100 + r everywhere. */
function slice(tag: number, rows: number, name = 'x'): RowSlice {
  const data = new Float32Array(rows * PER_ROW);
  for (let r = 0; r < rows; r++) data.fill(tag * 100 + r, r * PER_ROW, (r + 1) * PER_ROW);
  return { rows, feeds: { [name]: { dtype: 'float32', dims: [rows, PER_ROW], data } } };
}

/** What the fake session computes for one row of `slice(tag, …)`: (o + 1)·(3·value + k). */
function expectedRow(tag: number, r: number, output: number, width = 4): number[] {
  return Array.from({ length: width }, (_, k) => (output + 1) * (PER_ROW * (tag * 100 + r) + k));
}

function expectedRows(tag: number, rows: number, output: number): number[] {
  return Array.from({ length: rows }, (_, r) => expectedRow(tag, r, output)).flat();
}

function model(
  session: FakeRowSession,
  batcher: Partial<BatcherSettings> = {},
  extra: { clipAxis?: boolean; onBatch?: (e: BatchEvent) => void; onQueueChange?: () => void } = {},
): RowBatchedModel {
  return new RowBatchedModel({
    name: 'test-model',
    session,
    outputs: ['embedding', 'head_prenorm'],
    batcher: { maxBatchSize: 4, maxQueueDelayMs: 0, maxQueueSize: 8, maxConcurrentBatches: 1, ...batcher },
    ...extra,
  });
}

function dimsOf(t: HostTensor | undefined): readonly number[] {
  return t?.dims ?? [];
}

describe('RowBatchedModel', () => {
  it('runs the rows of several requests in one session call and gives each request its own rows back', async () => {
    const session = fakeRowSession({ gated: true });
    const events: BatchEvent[] = [];
    const m = model(session, {}, { onBatch: (e) => events.push(e) });
    // The first request runs at once; the next two queue behind it and then share one call.
    const first = m.run([slice(1, 1)]);
    const second = m.run([slice(2, 2)]);
    const third = m.run([slice(3, 1)]);
    expect(session.runs).toHaveLength(1);
    await session.openGate();
    expect(session.runs).toHaveLength(2);
    expect(dimsOf(session.runs[1]!.feeds['x'])).toEqual([3, PER_ROW]);
    await session.openGate();
    const [[a], [b], [c]] = await Promise.all([first, second, third]);
    expect(Array.from(a!['embedding']!)).toEqual(expectedRows(1, 1, 0));
    expect(Array.from(b!['embedding']!)).toEqual(expectedRows(2, 2, 0));
    expect(Array.from(b!['head_prenorm']!)).toEqual(expectedRows(2, 2, 1));
    expect(Array.from(c!['embedding']!)).toEqual(expectedRows(3, 1, 0));
    expect(events.map((e) => [e.size, e.units])).toEqual([
      [1, 1],
      [2, 3],
    ]);
  });

  it('keeps the slices of one request apart and in order', async () => {
    const session = fakeRowSession();
    // Together they fill the batch, so they go at once, in one call.
    const out = await model(session, { maxBatchSize: 3, maxQueueDelayMs: 60_000 }).run([
      slice(4, 2),
      slice(5, 1),
    ]);
    expect(session.runs).toHaveLength(1);
    expect(Array.from(out[0]!['embedding']!)).toEqual(expectedRows(4, 2, 0));
    expect(Array.from(out[1]!['embedding']!)).toEqual(expectedRows(5, 1, 0));
  });

  it('feeds rows as [rows, 1, ...] for a clips graph, so clips of many requests share the batch axis', async () => {
    const session = fakeRowSession();
    const out = await model(session, {}, { clipAxis: true }).run([slice(1, 3)]);
    expect(dimsOf(session.runs[0]!.feeds['x'])).toEqual([3, 1, PER_ROW]);
    expect(Array.from(out[0]!['embedding']!)).toEqual(expectedRows(1, 3, 0));
  });

  it('cuts a slice larger than a batch into batch-sized parts and joins their rows back in order', async () => {
    const session = fakeRowSession();
    const out = await model(session, { maxBatchSize: 4 }).run([slice(6, 10)]);
    expect(session.runs.map((r) => dimsOf(r.feeds['x'])[0])).toEqual([4, 4, 2]);
    expect(Array.from(out[0]!['embedding']!)).toEqual(expectedRows(6, 10, 0));
  });

  it('concatenates int64 feeds', async () => {
    const ids = (base: number): HostTensor => ({
      dtype: 'int64',
      dims: [1, 2],
      data: BigInt64Array.from([BigInt(base), BigInt(base + 1)]),
    });
    const held = fakeRowSession({ gated: true });
    const m = model(held);
    const blocker = m.run([{ rows: 1, feeds: { t: ids(0) } }]);
    const a = m.run([{ rows: 1, feeds: { t: ids(10) } }]);
    const b = m.run([{ rows: 1, feeds: { t: ids(20) } }]);
    await held.openGate();
    expect(held.runs[1]!.feeds['t']!.data).toEqual(BigInt64Array.from([10n, 11n, 20n, 21n]));
    await held.openGate();
    const [, [outA], [outB]] = await Promise.all([blocker, a, b]);
    // Row content shows in the output: Σ ids of the row.
    expect(outA!['embedding']![0]).toBe(21);
    expect(outB!['embedding']![0]).toBe(41);
  });

  it('refuses with OVERLOADED once the queue is full and withdraws the rest of that request', async () => {
    const session = fakeRowSession({ gated: true });
    const m = model(session, { maxBatchSize: 2, maxQueueSize: 3 });
    const running = m.run([slice(1, 2)]); // executing: holds no queue room
    const queued = m.run([slice(2, 2)]); // 2 of 3 rows waiting
    expect(m.stats().queuedUnits).toBe(2);
    // Two slices of one row: the first still fits (3 of 3), the second does not, so the request is
    // refused and its first slice leaves the queue again.
    await expect(m.run([slice(3, 1), slice(4, 1)])).rejects.toMatchObject({ code: ErrorCode.Overloaded });
    // The part that had been queued was withdrawn with the request.
    expect(m.stats().queuedUnits).toBe(2);
    expect(() => m.admit()).not.toThrow();
    await session.openGate();
    await session.openGate();
    await Promise.all([running, queued]);
    expect(m.stats().totals.cancelled).toBe(1);
    expect(m.stats().totals.overloaded).toBe(1);
  });

  it('admit refuses at once when not one more row fits', async () => {
    const session = fakeRowSession({ gated: true });
    const m = model(session, { maxBatchSize: 2, maxQueueSize: 2 });
    const running = m.run([slice(1, 2)]);
    const queued = m.run([slice(2, 2)]);
    let error: unknown;
    try {
      m.admit();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ code: ErrorCode.Overloaded, details: { retryAfterMs: 1 } });
    await session.openGate();
    await session.openGate();
    await Promise.all([running, queued]);
  });

  it('fails the batch with INTERNAL when the session returns an output that does not split into rows', async () => {
    const session = fakeRowSession({ width: 4 });
    const broken = {
      ...session,
      run: async (feeds: Record<string, HostTensor>) => {
        const out = await session.run(feeds);
        return { ...out, embedding: { dtype: 'float32' as const, dims: [1], data: new Float32Array(3) } };
      },
    };
    const m = new RowBatchedModel({
      name: 'broken',
      session: broken,
      outputs: ['embedding'],
      batcher: { maxBatchSize: 4, maxQueueDelayMs: 0, maxQueueSize: 4, maxConcurrentBatches: 1 },
    });
    await expect(m.run([slice(1, 2)])).rejects.toMatchObject({ code: ErrorCode.Internal });
  });

  it('reports each time a request enters or leaves the queue, for the queue-depth gauge', async () => {
    const session = fakeRowSession({ gated: true });
    const depths: number[] = [];
    const m: RowBatchedModel = model(
      session,
      {},
      { onQueueChange: () => depths.push(m.stats().queuedUnits) },
    );
    const running = m.run([slice(1, 1)]); // runs at once: nothing waits
    const queued = m.run([slice(2, 2)]); // waits behind it
    expect(depths).toEqual([0, 2]);
    await session.openGate();
    await session.openGate();
    await Promise.all([running, queued]);
    expect(depths).toEqual([0, 2, 0, 0]);
  });

  it('passes a caller abort on: queued rows leave the queue with CANCELLED', async () => {
    const session = fakeRowSession({ gated: true });
    const m = model(session);
    const running = m.run([slice(1, 1)]);
    const controller = new AbortController();
    const queued = m.run([slice(2, 2)], { signal: controller.signal });
    expect(m.stats().queuedUnits).toBe(2);
    controller.abort(new DomainError(ErrorCode.Cancelled, 'client went away'));
    await expect(queued).rejects.toMatchObject({ code: ErrorCode.Cancelled });
    expect(m.stats().queuedUnits).toBe(0);
    await session.openGate();
    await running;
  });
});
