import {
  Inject,
  Injectable,
  Module,
  type DynamicModule,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import {
  baseServiceEnv,
  batcherEnv,
  loadConfigOrExit,
  modelRepositoryEnv,
  type EnvOf,
  type EnvSchema,
} from '@imagebind-llm/config';
import { isDomainError } from '@imagebind-llm/errors';
import {
  bootstrapService,
  createServiceParts,
  GRPC_SERVER,
  GrpcServer,
  ServiceHostModule,
  type BootApp,
} from '@imagebind-llm/grpc-kit';
import type { BatchEvent } from '@imagebind-llm/inference';
import { InferenceMetrics, ServiceMetrics, type Logger } from '@imagebind-llm/observability';
import { BatchingMetrics, type QueueDepthSource } from '../batching-metrics';
import { ModelSlot } from '../model-slot';
import type { BatcherSettings } from '../row-batched-model';

/** The environment every batched model service reads (each adds its own variables). */
export function modelServiceEnv(defaults: {
  grpcPort: number;
  httpPort: number;
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
}) {
  return {
    ...baseServiceEnv({ grpcPort: defaults.grpcPort, httpPort: defaults.httpPort }),
    ...modelRepositoryEnv(),
    ...batcherEnv({
      maxBatch: defaults.maxBatch,
      maxDelayMs: defaults.maxDelayMs,
      maxQueue: defaults.maxQueue,
    }),
  };
}

export type ModelServiceEnv = EnvOf<ReturnType<typeof modelServiceEnv>>;

/** The batcher settings and session options an env gives. */
export function runtimeSettings(env: ModelServiceEnv): {
  batcher: BatcherSettings;
  providers: string[];
  intraOpThreads: number;
  allowSpinning: boolean;
} {
  return {
    batcher: {
      maxBatchSize: env.BATCH_MAX_SIZE,
      maxQueueDelayMs: env.BATCH_MAX_DELAY_MS,
      // The batcher needs room for at least one full batch.
      maxQueueSize: Math.max(env.BATCH_MAX_QUEUE, env.BATCH_MAX_SIZE),
      maxConcurrentBatches: env.BATCH_CONCURRENCY,
    },
    providers: env.EXECUTION_PROVIDERS.split(',')
      .map((p) => p.trim())
      .filter((p) => p !== ''),
    intraOpThreads: env.INTRA_OP_THREADS,
    allowSpinning: env.ORT_ALLOW_SPINNING,
  };
}

/** What the host needs of a runtime. */
export interface HostedRuntime {
  warmup(): Promise<void>;
  close(options: { readonly drain: boolean }): Promise<void>;
}

export interface ModelServiceDeps {
  readonly logger: Logger;
  readonly batching: BatchingMetrics;
}

/** What a runtime must report to its host; `load` wires both into the batchers. */
export interface RuntimeHooks {
  /** After every executed batch, with the model's metrics label (metrics, session health). */
  onBatch(label: string, event: BatchEvent): void;
  /** Whenever a request has entered or left a queue (queue-depth gauge). */
  onQueueChange(): void;
}

/** One model service: how it loads its runtime and which gRPC service it registers. */
export interface ModelServiceSpec<R extends HostedRuntime> {
  /** Loads the sessions, with `hooks` wired into the runtime's batchers. */
  load(deps: ModelServiceDeps, hooks: RuntimeHooks): Promise<R>;
  /** Adds the gRPC service(s), answering from the slot (not ready until the runtime is). */
  register(server: GrpcServer, slot: ModelSlot<R>, deps: ModelServiceDeps): void;
  /** Queue depth per model label, for the gauge. */
  queueDepth(runtime: R): ReturnType<QueueDepthSource>;
  /** Fields for the `service.ready` log line (providers, versions). */
  describe(runtime: R): Record<string, unknown>;
}

/**
 * Failed batches in a row (session errors, not bad requests) after which the session counts as
 * broken: the replica goes not-ready and exits so the orchestrator restarts it (ARCHITECTURE §8).
 * One failure could be a transient allocation failure; three in a row with no success is not.
 */
export const BROKEN_SESSION_FAILURES = 3;

export interface ModelServiceHostOptions<R extends HostedRuntime> {
  readonly service: string;
  readonly spec: ModelServiceSpec<R>;
  readonly deps: ModelServiceDeps;
  /** Exits the process; replaced in tests. */
  readonly exit?: (code: number) => void;
}

const HOST_OPTIONS = Symbol.for('imagebind.serving.model-service-host');

/**
 * A model service's life in Nest: registers its gRPC service at module init (so the server can
 * listen while models load), loads and warms the runtime when bootstrap asks, and closes it after
 * the gRPC server has drained.
 */
@Injectable()
export class ModelServiceLifecycle<R extends HostedRuntime = HostedRuntime>
  implements OnModuleInit, OnApplicationShutdown
{
  readonly slot = new ModelSlot<R>();
  private failuresInARow = 0;
  private app: Pick<BootApp, 'close'> | undefined;

  constructor(
    @Inject(HOST_OPTIONS) private readonly options: ModelServiceHostOptions<R>,
    @Inject(GRPC_SERVER) private readonly grpc: GrpcServer,
  ) {}

  onModuleInit(): void {
    this.options.spec.register(this.grpc, this.slot, this.options.deps);
  }

  /** Loads and warms the models; the caller turns the server SERVING when this resolves. */
  async start(app: Pick<BootApp, 'close'>): Promise<Record<string, unknown>> {
    this.app = app;
    const { spec, deps } = this.options;
    try {
      const runtime = await spec.load(deps, {
        onBatch: (label, event) => this.onBatch(label, event),
        onQueueChange: () => deps.batching.refreshQueueDepth(),
      });
      await runtime.warmup();
      this.slot.fill(runtime);
      deps.batching.track(() => spec.queueDepth(runtime));
      return spec.describe(runtime);
    } catch (error) {
      this.slot.fail(error instanceof Error ? error.message : String(error));
      throw error;
    }
  }

  async onApplicationShutdown(): Promise<void> {
    const runtime = this.slot.current;
    this.slot.close();
    // The gRPC server has drained by now (beforeApplicationShutdown); anything still queued runs.
    await runtime?.close({ drain: true });
  }

  private onBatch(label: string, event: BatchEvent): void {
    this.options.deps.batching.onBatch(label, event);
    if (event.error === undefined || isDomainError(event.error)) {
      if (event.error === undefined) this.failuresInARow = 0;
      return;
    }
    this.failuresInARow++;
    if (this.failuresInARow < BROKEN_SESSION_FAILURES || this.slot.state === 'failed') return;
    const message = event.error instanceof Error ? event.error.message : 'a non-Error value was thrown';
    this.slot.fail(`${label}: ${this.failuresInARow} batches failed in a row: ${message}`);
    this.grpc.setReady(false);
    this.options.deps.logger.fatal(
      { event: 'session.broken', model: label, err: event.error },
      'inference session is broken; exiting so the orchestrator restarts this replica',
    );
    const exit = this.options.exit ?? ((code: number) => process.exit(code));
    const app = this.app;
    if (app === undefined) exit(1);
    else
      app.close().then(
        () => exit(1),
        () => exit(1),
      );
  }
}

@Module({})
export class ModelServiceModule {
  static forRoot<R extends HostedRuntime>(
    options: ModelServiceHostOptions<R> & {
      readonly grpc: GrpcServer;
      readonly metrics: ServiceMetrics;
      readonly shutdownGraceMs: number;
    },
  ): DynamicModule {
    return {
      module: ModelServiceModule,
      imports: [
        ServiceHostModule.forRoot({
          grpc: options.grpc,
          metrics: options.metrics,
          shutdownGraceMs: options.shutdownGraceMs,
          // Ready only once the models have loaded and warmed up.
          readyOnStart: false,
        }),
      ],
      providers: [{ provide: HOST_OPTIONS, useValue: options }, ModelServiceLifecycle],
    };
  }
}

/**
 * Boots one model service process: env (fails fast with what to set), JSON logs, metrics, the
 * gRPC server with reflection, the Nest app with /metrics /healthz /readyz, then model load and
 * warm-up, SERVING and the `service.ready` line; SIGTERM drains and exits 0.
 */
export async function runModelService<S extends EnvSchema, R extends HostedRuntime>(
  service: string,
  schema: S,
  spec: (env: EnvOf<S> & ModelServiceEnv) => ModelServiceSpec<R>,
): Promise<void> {
  const env = loadConfigOrExit(service, schema) as EnvOf<S> & ModelServiceEnv;
  const parts = createServiceParts({
    service,
    logLevel: env.LOG_LEVEL,
    host: env.GRPC_HOST,
    port: env.GRPC_PORT,
    maxMessageBytes: env.MAX_MESSAGE_BYTES,
    otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT,
  });
  const { logger, metrics, grpc } = parts;
  let module: DynamicModule;
  try {
    const deps: ModelServiceDeps = { logger, batching: new BatchingMetrics(new InferenceMetrics(metrics)) };
    module = ModelServiceModule.forRoot({
      service,
      spec: spec(env),
      deps,
      grpc,
      metrics,
      shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
    });
  } catch (error) {
    // One line that says what failed; the orchestrator restarts the pod.
    process.stderr.write(
      `${service} failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exit(1);
  }
  // bootstrapService reports its own failures the same way and exits 1.
  await bootstrapService({
    service,
    module,
    grpc,
    logger,
    http: { host: env.HTTP_HOST, port: env.HTTP_PORT },
    warmup: async (app) => app.get<ModelServiceLifecycle<R>>(ModelServiceLifecycle).start(app),
  });
}
