import { afterEach } from 'vitest';
import { ImageBindClient } from '../image-bind-client';
import type { ImageBindClientOptions } from '../client-options';
import { ImageBindError } from '../image-bind-error';
import { startFakeGateway, type FakeGateway, type FakeHandlers } from './fake-gateway';

/**
 * For a spec file: `setup` starts a fake gateway and a client on it; both are stopped after each
 * test (client first), whatever the test did with them.
 */
export function fakeGatewaySetup(): (
  handlers: FakeHandlers,
  options?: Partial<ImageBindClientOptions>,
) => Promise<{ fake: FakeGateway; client: ImageBindClient }> {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return async (handlers, options = {}) => {
    const fake = await startFakeGateway(handlers);
    cleanups.push(() => fake.stop());
    const client = new ImageBindClient({ addresses: fake.address, ...options });
    cleanups.push(() => client.close());
    return { fake, client };
  };
}

/** The ImageBindError `promise` rejects with; fails the test if it resolves or rejects otherwise. */
export async function imageBindRejection(promise: Promise<unknown>): Promise<ImageBindError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ImageBindError)) throw new Error(`expected an ImageBindError, got ${String(error)}`);
  return error;
}
