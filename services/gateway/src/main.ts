import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { NestFactory } from '@nestjs/core';
import { loadConfigOrExit } from '@imagebind-llm/config';
import { closeOnSignals, GrpcServer, routeGrpcLogs } from '@imagebind-llm/grpc-kit';
import { createLogger, NestLoggerAdapter, ServiceMetrics } from '@imagebind-llm/observability';
import { loadDescriptorSet } from '@imagebind-llm/proto';
import type { Server } from 'node:http';
import { GatewayModule } from './app.module';
import { gatewayEnvSchema } from './env.schema';

async function bootstrap(): Promise<void> {
  const env = loadConfigOrExit('gateway', gatewayEnvSchema);
  const logger = createLogger({ service: 'gateway', level: env.LOG_LEVEL });
  routeGrpcLogs(logger);
  const metrics = new ServiceMetrics('gateway');
  const grpc = new GrpcServer({
    host: env.GATEWAY_GRPC_HOST,
    port: env.GATEWAY_GRPC_PORT,
    logger,
    metrics,
    maxReceiveMessageBytes: env.GATEWAY_MAX_MESSAGE_BYTES,
    descriptorSet: loadDescriptorSet(),
  });
  const app = await NestFactory.create(GatewayModule.forRoot({ env, logger, metrics, grpc }), {
    logger: new NestLoggerAdapter(logger),
    abortOnError: false,
  });
  // SIGTERM → readiness off → drain gRPC calls → close HTTP → exit 0 (ARCHITECTURE §8).
  closeOnSignals(app, logger);
  await app.listen(env.GATEWAY_HTTP_PORT, env.GATEWAY_HTTP_HOST);
  const address = (app.getHttpServer() as Server).address() as AddressInfo;
  logger.info({ event: 'http.listening', host: env.GATEWAY_HTTP_HOST, port: address.port }, 'HTTP listening');
  logger.info({ event: 'service.ready', grpcPort: grpc.port, httpPort: address.port }, 'gateway ready');
}

bootstrap().catch((error: unknown) => {
  // One line that says what failed; the orchestrator restarts the pod.
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`gateway failed to start: ${message}\n`);
  process.exit(1);
});
