import { GrpcServer } from '@imagebind-llm/grpc-kit';
import { createLogger, MemoryLog, ServiceMetrics, type Logger } from '@imagebind-llm/observability';

export { MemoryLog } from '@imagebind-llm/observability';

export interface GrpcTestServer {
  readonly server: GrpcServer;
  /** `127.0.0.1:<port>` */
  readonly address: string;
  readonly log: MemoryLog;
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  close(graceMs?: number): Promise<void>;
}

/**
 * A real grpc-js server on a loopback ephemeral port, with logs captured in memory. `register`
 * adds the services under test before the server starts.
 */
export async function startGrpcTestServer(
  register: (server: GrpcServer) => void,
  options: { maxReceiveMessageBytes?: number; descriptorSet?: Buffer; ready?: boolean } = {},
): Promise<GrpcTestServer> {
  const log = new MemoryLog();
  const logger = createLogger({ service: 'test', level: 'debug', destination: log });
  const metrics = new ServiceMetrics('test');
  const server = new GrpcServer({
    host: '127.0.0.1',
    port: 0,
    logger,
    metrics,
    maxReceiveMessageBytes: options.maxReceiveMessageBytes ?? 4 * 1024 * 1024,
    ...(options.descriptorSet === undefined ? {} : { descriptorSet: options.descriptorSet }),
  });
  register(server);
  const port = await server.start();
  if (options.ready !== false) server.setReady(true);
  return {
    server,
    address: `127.0.0.1:${port}`,
    log,
    logger,
    metrics,
    close: (graceMs = 1_000) => server.shutdown(graceMs),
  };
}
