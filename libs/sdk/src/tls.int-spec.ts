import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ServerCredentials } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { ImageBindClient, ImageBindError } from './index';
import { startFakeGateway, type FakeGateway } from './testing/fake-gateway';

const fixtures = join(__dirname, 'testing', 'fixtures');
const ca = readFileSync(join(fixtures, 'test-ca.crt'));
const serverCredentials = ServerCredentials.createSsl(null, [
  {
    cert_chain: readFileSync(join(fixtures, 'gateway-test.crt')),
    private_key: readFileSync(join(fixtures, 'gateway-test.key')),
  },
]);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tlsGateway(): Promise<FakeGateway> {
  const fake = await startFakeGateway(
    {
      listModels: (_call, callback) => callback(null, { models: [{ name: 'm', version: '1', ready: true }] }),
    },
    serverCredentials,
  );
  cleanups.push(() => fake.stop());
  return fake;
}

function client(options: ConstructorParameters<typeof ImageBindClient>[0]): ImageBindClient {
  const c = new ImageBindClient({ ...options, retry: { maxAttempts: 1 } });
  cleanups.push(() => c.close());
  return c;
}

describe('TLS', () => {
  it('connects with explicit root certificates and a server name for an IP address', async () => {
    const fake = await tlsGateway();
    const sdk = client({ addresses: fake.address, tls: { rootCerts: ca, serverName: 'gateway.test' } });
    expect(await sdk.listModels()).toHaveLength(1);
  });

  it('fails with UNAVAILABLE when the server certificate is not trusted', async () => {
    const fake = await tlsGateway();
    const sdk = client({ addresses: fake.address, tls: { serverName: 'gateway.test' }, timeoutMs: 5_000 });
    const error: unknown = await sdk.listModels().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImageBindError);
    expect((error as ImageBindError).code).toBe('UNAVAILABLE');
    expect(fake.calls).toHaveLength(0);
  });

  it('refuses certificates that are not PEM buffers', () => {
    expect(
      () => new ImageBindClient({ addresses: 'h:1', tls: { rootCerts: 'pem' as unknown as Buffer } }),
    ).toThrow(/tls: .*Buffers/);
  });
});
