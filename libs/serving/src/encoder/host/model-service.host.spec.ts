import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { GrpcServer } from '@imagebind-llm/grpc-kit';
import type { BatchEvent } from '@imagebind-llm/inference';
import { createLogger, InferenceMetrics, MemoryLog, ServiceMetrics } from '@imagebind-llm/observability';
import { strictFake } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { BatchingMetrics } from '../batching-metrics';
import {
  BROKEN_SESSION_FAILURES,
  ModelServiceLifecycle,
  runtimeSettings,
  type HostedRuntime,
  type ModelServiceEnv,
} from './model-service.host';

const ok: BatchEvent = { size: 1, units: 1, queueDelayMs: 0, executeMs: 1 };
const broken = (message: string): BatchEvent => ({ ...ok, error: new Error(message) });

function lifecycle(options: { loadFails?: boolean } = {}) {
  const log = new MemoryLog();
  const logger = createLogger({ service: 'test', level: 'debug', destination: log });
  const readiness: boolean[] = [];
  const exits: number[] = [];
  let closes = 0;
  let onBatch: ((label: string, event: BatchEvent) => void) | undefined;
  const runtime: HostedRuntime = {
    warmup: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  const registered: unknown[] = [];
  const grpc = strictFake<GrpcServer>('grpc', { setReady: (ready: boolean) => void readiness.push(ready) });
  const host = new ModelServiceLifecycle(
    {
      service: 'test',
      deps: { logger, batching: new BatchingMetrics(new InferenceMetrics(new ServiceMetrics('test'))) },
      exit: (code) => void exits.push(code),
      spec: {
        load: async (_deps, hooks) => {
          onBatch = (label, event) => hooks.onBatch(label, event);
          await Promise.resolve();
          if (options.loadFails === true) throw new Error('no such model');
          return runtime;
        },
        register: (server, slot) => void registered.push([server, slot]),
        queueDepth: () => [{ label: 'm', queuedUnits: 0 }],
        describe: () => ({ loaded: true }),
      },
    },
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
    closes: () => closes,
    batch: (e: BatchEvent) => onBatch!('m', e),
    registered,
    log,
  };
}

describe('ModelServiceLifecycle', () => {
  it('registers at init, serves from the slot once loaded and warmed, and reports what it loaded', async () => {
    const t = lifecycle();
    t.host.onModuleInit();
    expect(t.registered).toHaveLength(1);
    expect(t.host.slot.state).toBe('loading');
    expect(await t.host.start(t.app)).toEqual({ loaded: true });
    expect(t.host.slot.state).toBe('ready');
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
});

describe('runtimeSettings', () => {
  it('reads the batcher and session settings, giving the queue room for a full batch', () => {
    const env = {
      BATCH_MAX_SIZE: 16,
      BATCH_MAX_DELAY_MS: 5,
      BATCH_MAX_QUEUE: 4,
      BATCH_CONCURRENCY: 2,
      EXECUTION_PROVIDERS: ' cuda, ,cpu',
      INTRA_OP_THREADS: 3,
    } as ModelServiceEnv;
    expect(runtimeSettings(env)).toEqual({
      batcher: { maxBatchSize: 16, maxQueueDelayMs: 5, maxQueueSize: 16, maxConcurrentBatches: 2 },
      providers: ['cuda', 'cpu'],
      intraOpThreads: 3,
    });
  });
});
