import { credentials, loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

interface ReflectionStream {
  on(event: 'data', listener: (m: { list_services_response: { service: { name: string }[] } }) => void): void;
  on(event: 'error', listener: (e: Error) => void): void;
  write(message: unknown): boolean;
  end(): void;
}

interface ReflectionClient {
  ServerReflectionInfo(): ReflectionStream;
  close(): void;
}

/** The services a server advertises through grpc.reflection.v1 (`list_services`), as grpcurl lists them. */
export async function listServicesByReflection(address: string): Promise<string[]> {
  const protoPath = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
  const def = loadPackageDefinition(loadSync(protoPath, { keepCase: true })) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: new (a: string, c: unknown) => ReflectionClient } } };
  };
  const client = new def.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure());
  try {
    const call = client.ServerReflectionInfo();
    const response = new Promise<{ list_services_response: { service: { name: string }[] } }>(
      (resolve, reject) => {
        call.on('data', resolve);
        call.on('error', reject);
      },
    );
    call.write({ list_services: '' });
    const r = await response;
    call.end();
    return r.list_services_response.service.map((s) => s.name);
  } finally {
    client.close();
  }
}
