// Balances calls over several gateway replicas on the client side and retries the ones that
// answer UNAVAILABLE (a replica restarting). With IP addresses grpc-js's round_robin also skips
// replicas that are down; with host names the client rotates through one channel per name.
//
// Run from the repository root:
//   npx tsc -b libs/sdk/examples/tsconfig.json
//   node libs/sdk/examples/dist/round-robin.mjs 10.0.0.11:50051 10.0.0.12:50051 [more...]
// Set IBLLM_API_KEY when the gateway requires a key.
import { pathToFileURL } from 'node:url';
import { ImageBindClient, isImageBindError } from '@imagebind-llm/client';

export async function main(
  args: readonly string[],
  print: (line: string) => void = console.log,
  apiKey: string | undefined = process.env['IBLLM_API_KEY'],
): Promise<void> {
  if (args.length === 0) throw new Error('usage: round-robin.mjs <host:port> [<host:port> ...]');
  const client = new ImageBindClient({
    addresses: args,
    ...(apiKey === undefined ? {} : { apiKey }),
    timeoutMs: 5_000,
    retry: { maxAttempts: 4, initialBackoffMs: 50, maxBackoffMs: 1_000 },
  });
  try {
    for (let i = 1; i <= 10; i++) {
      try {
        const models = await client.listModels({ requestId: `round-robin-${i}` });
        const ready = models.filter((m) => m.ready).map((m) => `${m.name}@${m.version}`);
        print(`call ${i}: ${models.length} models, ready: ${ready.join(', ') || 'none'}`);
      } catch (error) {
        // Every failure is an ImageBindError: branch on the gRPC code or the platform's domain code.
        if (!isImageBindError(error)) throw error;
        print(
          `call ${i} failed: ${error.code}${error.domainCode === undefined ? '' : `/${error.domainCode}`}`,
        );
      }
    }
  } finally {
    client.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(isImageBindError(error) ? error.message : String(error));
    process.exitCode = 1;
  });
}
