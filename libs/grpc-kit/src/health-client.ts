import {
  credentials,
  makeGenericClientConstructor,
  Metadata,
  type Client,
  type ServiceError,
} from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

/** `grpc.health.v1.HealthCheckResponse.ServingStatus` names. */
export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

interface HealthClient extends Client {
  check(
    request: { service: string },
    metadata: Metadata,
    options: { deadline: Date },
    callback: (error: ServiceError | null, response: { status: HealthStatus | number }) => void,
  ): void;
}

const HealthClientCtor = makeGenericClientConstructor(
  healthService,
  'grpc.health.v1.Health',
) as unknown as new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => HealthClient;

const STATUS_BY_NUMBER: readonly HealthStatus[] = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/**
 * Calls `grpc.health.v1.Health/Check` once (what `grpc_health_probe` and Kubernetes' gRPC probe
 * do) and resolves with the status name. Rejects with the gRPC error, e.g. NOT_FOUND for a service
 * name the server does not know.
 */
export async function checkHealth(address: string, service = '', timeoutMs = 2_000): Promise<HealthStatus> {
  const client = new HealthClientCtor(address, credentials.createInsecure());
  try {
    return await new Promise<HealthStatus>((resolve, reject) => {
      client.check(
        { service },
        new Metadata(),
        { deadline: new Date(Date.now() + timeoutMs) },
        (error, response) => {
          if (error) reject(error);
          else
            resolve(
              typeof response.status === 'number'
                ? (STATUS_BY_NUMBER[response.status] ?? 'UNKNOWN')
                : response.status,
            );
        },
      );
    });
  } finally {
    client.close();
  }
}
