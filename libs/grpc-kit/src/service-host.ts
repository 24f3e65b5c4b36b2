import {
  Controller,
  Get,
  Header,
  HttpStatus,
  Inject,
  Module,
  type DynamicModule,
  type INestApplication,
} from '@nestjs/common';
import { Res } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import {
  createLogger,
  NestLoggerAdapter,
  otlpTracesUrl,
  ServiceMetrics,
  startOtlpTracing,
  type Logger,
} from '@imagebind-llm/observability';
import { loadDescriptorSet } from '@imagebind-llm/proto';
import { routeGrpcLogs } from './grpc-logging';
import { closeOnSignals, GRPC_SERVER, GrpcHostModule } from './nest-host';
import { GrpcServer } from './server';

/** Injection token of the process's ServiceMetrics. */
export const SERVICE_METRICS = Symbol.for('imagebind.grpc-kit.metrics');

/** The slice of an Express response the ops endpoints use (keeps express out of this lib's types). */
interface OpsResponse {
  status(code: number): OpsResponse;
  type(contentType: string): OpsResponse;
  send(body: string): unknown;
  json(body: unknown): unknown;
}

/** Operational HTTP endpoints of every service: Prometheus scrape, liveness, readiness. */
@Controller()
export class OpsHttpController {
  constructor(
    @Inject(SERVICE_METRICS) private readonly metrics: ServiceMetrics,
    @Inject(GRPC_SERVER) private readonly grpc: GrpcServer,
  ) {}

  @Get('metrics')
  async scrape(@Res() res: OpsResponse): Promise<void> {
    const { contentType, body } = await this.metrics.scrape();
    res.status(HttpStatus.OK).type(contentType).send(body);
  }

  /** Liveness: the event loop answers. Never depends on models or downstream services. */
  @Get('healthz')
  @Header('cache-control', 'no-store')
  live(): { status: string } {
    return { status: 'ok' };
  }

  /** Readiness: 200 only while the gRPC server reports SERVING (not while loading or draining). */
  @Get('readyz')
  @Header('cache-control', 'no-store')
  ready(@Res() res: OpsResponse): void {
    const ready = this.grpc.isReady;
    res
      .status(ready ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE)
      .json({ status: ready ? 'ready' : 'not ready' });
  }
}

export interface ServiceHostOptions {
  readonly grpc: GrpcServer;
  readonly metrics: ServiceMetrics;
  readonly shutdownGraceMs: number;
  /** True for services without models (ready once listening); model services call setReady. */
  readonly readyOnStart: boolean;
}

/** gRPC server lifecycle + ops endpoints; a service module imports this and adds its own parts. */
@Module({})
export class ServiceHostModule {
  static forRoot(options: ServiceHostOptions): DynamicModule {
    return {
      module: ServiceHostModule,
      global: true,
      imports: [
        GrpcHostModule.forRoot({
          server: options.grpc,
          shutdownGraceMs: options.shutdownGraceMs,
          readyOnStart: options.readyOnStart,
        }),
      ],
      controllers: [OpsHttpController],
      providers: [{ provide: SERVICE_METRICS, useValue: options.metrics }],
      exports: [SERVICE_METRICS],
    };
  }
}

interface JsonBodyApp {
  useBodyParser(type: 'json', options: { limit: number }): unknown;
}

/** What `bootstrapService` needs of a Nest application. */
export interface BootApp {
  close(): Promise<void>;
  listen(port: number, host: string): Promise<unknown>;
  getHttpServer(): unknown;
}

export interface BootstrapOptions {
  readonly service: string;
  /** The service's root module (it must import ServiceHostModule). */
  readonly module: DynamicModule;
  readonly grpc: GrpcServer;
  readonly logger: Logger;
  readonly http: { readonly host: string; readonly port: number };
  /** Accept JSON request bodies up to this size (REST APIs); unset keeps Nest's default parser. */
  readonly jsonBodyLimitBytes?: number;
  /**
   * Runs on the new app before the body parser is installed: middleware that must see a request
   * before its body is read, global exception filters (the gateway's REST error shape).
   */
  readonly configureHttp?: (app: INestApplication) => void;
  /**
   * Loads and warms the models after the listeners are up, so probes see "not ready" (not
   * "connection refused") while it runs; the server turns SERVING when it resolves.
   */
  readonly warmup?: (app: BootApp & { get<T>(token: unknown): T }) => Promise<Record<string, unknown> | void>;
}

/**
 * Starts a service the same way everywhere: Nest app, signal handling (SIGTERM → not ready →
 * drain → exit 0), HTTP listener, warm-up, then SERVING and one `service.ready` log line carrying
 * the bound ports (tests and supervisors wait for it). A failure exits 1 with one stderr line.
 */
export async function bootstrapService(options: BootstrapOptions): Promise<void> {
  const { service, logger } = options;
  try {
    const app = await NestFactory.create(options.module, {
      logger: new NestLoggerAdapter(logger),
      abortOnError: false,
      ...(options.jsonBodyLimitBytes === undefined ? {} : { bodyParser: false }),
    });
    // No framework banner in the responses.
    (app.getHttpAdapter().getInstance() as { disable(setting: string): void }).disable('x-powered-by');
    options.configureHttp?.(app);
    if (options.jsonBodyLimitBytes !== undefined) {
      // Express' json parser answers 413 past the limit before anything is buffered further.
      (app as unknown as JsonBodyApp).useBodyParser('json', { limit: options.jsonBodyLimitBytes });
    }
    closeOnSignals(app, logger);
    await app.listen(options.http.port, options.http.host);
    setHttpTimeouts(app.getHttpServer() as Server);
    const address = (app.getHttpServer() as Server).address() as AddressInfo;
    logger.info({ event: 'http.listening', host: options.http.host, port: address.port }, 'HTTP listening');
    const started = Date.now();
    const extra = (await options.warmup?.(app)) ?? {};
    options.grpc.setReady(true);
    logger.info(
      {
        event: 'service.ready',
        service,
        pid: process.pid,
        grpcPort: options.grpc.port,
        httpPort: address.port,
        warmupMs: Date.now() - started,
        ...extra,
      },
      `${service} ready`,
    );
  } catch (error: unknown) {
    const message = error instanceof Error ? error.message : String(error);
    logger.error({ event: 'service.failed', err: error }, `${service} failed to start`);
    process.stderr.write(`${service} failed to start: ${message}\n`);
    process.exit(1);
  }
}

/**
 * Explicit limits on slow clients instead of Node's defaults: the headers must arrive within 15 s
 * and the whole request (headers and body; not the response, so SSE streams may last) within
 * 120 s, enough for the largest allowed body over a slow link; idle keep-alive connections close
 * after 5 s.
 */
export const HTTP_HEADERS_TIMEOUT_MS = 15_000;
export const HTTP_REQUEST_TIMEOUT_MS = 120_000;
export const HTTP_KEEP_ALIVE_TIMEOUT_MS = 5_000;

function setHttpTimeouts(server: Server): void {
  server.headersTimeout = HTTP_HEADERS_TIMEOUT_MS;
  server.requestTimeout = HTTP_REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = HTTP_KEEP_ALIVE_TIMEOUT_MS;
}

/** The process-wide objects of one service: its logger, metrics registry and gRPC server. */
export interface ServiceParts {
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  readonly grpc: GrpcServer;
}

/**
 * Creates a service's logger (grpc-js logs routed into it), metrics registry and gRPC server with
 * the platform's conventions (reflection over the contracts' descriptor set). One place, so every
 * service starts the same way.
 */
export function createServiceParts(options: {
  readonly service: string;
  readonly logLevel: string;
  readonly host: string;
  readonly port: number;
  readonly maxMessageBytes: number;
  /** OTEL_EXPORTER_OTLP_ENDPOINT: export spans there (OpenTelemetry over OTLP/HTTP); unset: off. */
  readonly otlpEndpoint?: string | undefined;
}): ServiceParts {
  const logger = createLogger({ service: options.service, level: options.logLevel });
  routeGrpcLogs(logger);
  if (options.otlpEndpoint !== undefined) {
    // Flushed on shutdown by closeOnSignals (flushTracing).
    startOtlpTracing({ serviceName: options.service, endpoint: options.otlpEndpoint });
    logger.info(
      { event: 'tracing.otlp', endpoint: otlpTracesUrl(options.otlpEndpoint) },
      'exporting traces over OTLP/HTTP',
    );
  }
  const metrics = new ServiceMetrics(options.service);
  const grpc = new GrpcServer({
    host: options.host,
    port: options.port,
    logger,
    metrics,
    maxReceiveMessageBytes: options.maxMessageBytes,
    descriptorSet: loadDescriptorSet(),
  });
  return { logger, metrics, grpc };
}
