import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { GrpcServer } from '@imagebind-llm/grpc-kit';
import type { BatchEvent } from '@imagebind-llm/inference';
import { createLogger, MemoryLog, ServiceMetrics } from '@imagebind-llm/observability';
import { strictFake } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import {
  BROKEN_SESSION_FAILURES,
  serviceDeps,
  ServiceLifecycle,
  type HostedRuntime,
  type RuntimeHooks,
  type ServiceSpec,
} from './service-host';

const ok: BatchEvent = { size: 1, units: 1, queueDelayMs: 0, executeMs: 1 };
const broken = (message: string): BatchEvent => ({ ...ok, error: new Error(message) });

function lifecycle(options: { loadFails?: boolean; batched?: boolean; attach?: boolean } = {}) {
  const log = new MemoryLog();
  const logger = createLogger({ service: 'test', level: 'debug', destination: log });
  const metrics = new ServiceMetrics('test');
  const readiness: boolean[] = [];
  const exits: number[] = [];
  const steps: string[] = [];
  let closes = 0;
  let hooks: RuntimeHooks | undefined;
  const runtime: HostedRuntime = {
    warmup: () => {
      steps.push('warmup');
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
  const registered: unknown[] = [];
  const grpc = strictFake<GrpcServer>('grpc', { setReady: (ready: boolean) => void readiness.push(ready) });
  const spec: ServiceSpec<HostedRuntime> = {
    load: async (_deps, h) => {
      hooks = h;
      await Promise.resolve();
      if (options.loadFails === true) throw new Error('no such model');
      return runtime;
    },
    register: (server, slot) => void registered.push([server, slot]),
    describe: () => ({ loaded: true }),
    ...(options.batched === false ? {} : { queueDepth: () => [{ label: 'm', queuedUnits: 0 }] }),
    ...(options.attach === true ? { attach: () => void steps.push(`attach ${host.slot.state}`) } : {}),
  };
  const host = new ServiceLifecycle(
    { service: 'test', deps: serviceDeps(logger, metrics), exit: (code) => void exits.push(code), spec },
    grpc,
  );
  const app = {
    close: async () => {
      closes++;
      await Promise.resolve();
    },
  };
  return {
    host,
    app,
    readiness,
    exits,
    steps,
    closes: () => closes,
    batch: (e: BatchEvent) => hooks!.onBatch('m', e),
    fatal: () =>
      hooks!.onFatal('the session failed', { fields: { event: 'thing.fatal' }, message: 'exiting' }),
    registered,
    log,
    scrape: async () => (await metrics.scrape()).body,
  };
}

describe('ServiceLifecycle', () => {
  it('registers at init, serves from the slot once loaded and warmed, and reports what it loaded', async () => {
    const t = lifecycle();
    t.host.onModuleInit();
    expect(t.registered).toHaveLength(1);
    expect(t.host.slot.state).toBe('loading');
    expect(await t.host.start(t.app)).toEqual({ loaded: true });
    expect(t.host.slot.state).toBe('ready');
    // A batched service's queue depth shows from the start.
    expect(await t.scrape()).toMatch(/^ibllm_batcher_queue_depth\{[^}]*model="m"[^}]*\} 0$/m);
    await t.host.onApplicationShutdown();
    expect(t.host.slot.state).toBe('closed');
  });

  it('marks the models failed when loading fails, and lets bootstrap exit', async () => {
    const t = lifecycle({ loadFails: true });
    await expect(t.host.start(t.app)).rejects.toThrow('no such model');
    expect(t.host.slot.state).toBe('failed');
    expect(t.host.slot.failureMessage).toBe('no such model');
  });

  it(`treats ${BROKEN_SESSION_FAILURES} session failures in a row as a broken session: not ready, close, exit 1`, async () => {
    const t = lifecycle();
    await t.host.start(t.app);
    t.batch(broken('a'));
    t.batch(broken('b'));
    t.batch(ok); // a success resets the count
    t.batch(broken('c'));
    // Bad requests are not the session's fault.
    t.batch({ ...ok, error: new DomainError(ErrorCode.InvalidInput, 'bad rows') });
    t.batch(broken('d'));
    expect(t.host.slot.state).toBe('ready');
    expect(t.exits).toEqual([]);
    t.batch(broken('e'));
    expect(t.host.slot.state).toBe('failed');
    expect(t.host.slot.failureMessage).toMatch(/m: 3 batches failed in a row: e/);
    expect(t.readiness).toEqual([false]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(t.closes()).toBe(1);
    expect(t.exits).toEqual([1]);
    expect(t.log.lines.some((l) => l['event'] === 'session.broken')).toBe(true);
  });

  it('takes a fatal report from the runtime once: not ready, its own fatal line, close, exit 1', async () => {
    const t = lifecycle({ batched: false });
    await t.host.start(t.app);
    t.fatal();
    t.fatal();
    expect(t.host.slot.state).toBe('failed');
    expect(t.host.slot.failureMessage).toBe('the session failed');
    expect(t.readiness).toEqual([false]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(t.closes()).toBe(1);
    expect(t.exits).toEqual([1]);
    expect(t.log.lines.filter((l) => l['event'] === 'thing.fatal')).toEqual([
      expect.objectContaining({ level: 'fatal', msg: 'exiting' }),
    ]);
  });

  it('attaches the runtime after warm-up, and an unbatched service exports no inference series', async () => {
    const t = lifecycle({ batched: false, attach: true });
    await t.host.start(t.app);
    expect(t.steps).toEqual(['warmup', 'attach ready']);
    expect(await t.scrape()).not.toMatch(/^# TYPE ibllm_batcher_queue_depth /m);
  });
});
