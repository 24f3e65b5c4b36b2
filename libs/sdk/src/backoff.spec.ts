import { describe, expect, it } from 'vitest';
import { backoffDelay, sleep } from './backoff';
import { ImageBindError } from './image-bind-error';

const policy = { maxAttempts: 5, initialBackoffMs: 100, maxBackoffMs: 1_000 };

describe('backoffDelay', () => {
  it('doubles per retry within [half, full] of the step, capped', () => {
    expect(backoffDelay(policy, 1, undefined, () => 0)).toBe(50);
    expect(backoffDelay(policy, 1, undefined, () => 1)).toBe(100);
    expect(backoffDelay(policy, 3, undefined, () => 0.5)).toBe(300);
    expect(backoffDelay(policy, 10, undefined, () => 1)).toBe(1_000);
  });

  it('never waits less than the server hint', () => {
    expect(backoffDelay(policy, 1, 700, () => 1)).toBe(700);
    expect(backoffDelay(policy, 4, 10, () => 1)).toBe(800);
  });
});

describe('sleep', () => {
  it('rejects with CANCELLED when the signal aborts', async () => {
    const controller = new AbortController();
    const pending = sleep(60_000, controller.signal, 'req-1');
    controller.abort('stop');
    const error: unknown = await pending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImageBindError);
    expect(error).toMatchObject({ code: 'CANCELLED', requestId: 'req-1', cause: 'stop' });
  });
});
