import { afterEach, describe, expect, it } from 'vitest';
import { ImageBindClient } from './index';
import { startFakeGateway, type FakeGateway } from './testing/fake-gateway';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function gateway(): Promise<FakeGateway> {
  const fake = await startFakeGateway({ listModels: (_call, callback) => callback(null, { models: [] }) });
  cleanups.push(() => fake.stop());
  return fake;
}

function client(addresses: string[]): ImageBindClient {
  const c = new ImageBindClient({ addresses, retry: { initialBackoffMs: 1, maxBackoffMs: 4 } });
  cleanups.push(() => c.close());
  return c;
}

describe('round-robin', () => {
  it('spreads 10 unary calls over two IP addresses', async () => {
    const [a, b] = [await gateway(), await gateway()];
    const sdk = client([a.address, b.address]);
    for (let i = 0; i < 10; i++) await sdk.listModels();
    expect(a.calls.length).toBeGreaterThan(0);
    expect(b.calls.length).toBeGreaterThan(0);
    expect(a.calls.length + b.calls.length).toBe(10);
  });

  it('alternates calls between host names, one channel per name', async () => {
    const [a, b] = [await gateway(), await gateway()];
    const sdk = client([`localhost:${a.port}`, `localhost:${b.port}`]);
    for (let i = 0; i < 10; i++) await sdk.listModels();
    expect([a.calls.length, b.calls.length]).toEqual([5, 5]);
  });

  it('keeps serving from the live address when the other one is down', async () => {
    const live = await gateway();
    const dead = await gateway();
    await dead.stop();
    const sdk = client([live.address, dead.address]);
    for (let i = 0; i < 10; i++) await sdk.listModels();
    expect(live.calls).toHaveLength(10);
  });
});
