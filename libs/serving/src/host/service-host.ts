import {
  Inject,
  Injectable,
  Module,
  type DynamicModule,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { loadConfigOrExit, type baseServiceEnv, type EnvOf, type EnvSchema } from '@imagebind-llm/config';
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
import {
  InferenceMetrics,
  PreprocessMetrics,
  type Logger,
  type PreprocessPoolSnapshot,
  type ServiceMetrics,
} from '@imagebind-llm/observability';
import { BatchingMetrics, type QueueDepthSource } from '../encoder/batching-metrics';
import { ModelSlot } from '../encoder/model-slot';

/** The settings the host itself reads; every hosted service's schema spreads `baseServiceEnv`. */
export type ServiceSchema = ReturnType<typeof baseServiceEnv>;
export type ServiceEnv = EnvOf<ServiceSchema>;

/** What the host needs of a runtime: a model runtime, or the retriever's store. */
export interface HostedRuntime {
  warmup(): Promise<void>;
  close(options: { readonly drain: boolean }): Promise<void>;
}

export interface ServiceDeps {
  readonly logger: Logger;
  /** The inference series (TTFT, tokens, batches, queue depth). */
  readonly inference: InferenceMetrics;
  /** Feeds `inference` from the batchers of batched models. */
  readonly batching: BatchingMetrics;
  /** Exports a preprocessing pool's series (PreprocessMetrics), read from `source` at each scrape; once per process. */
  trackPreprocessing(source: () => PreprocessPoolSnapshot | undefined): void;
}

/**
 * The deps over one metrics registry. The inference series are registered on first use, so a
 * service that runs no model (the retriever) exports none of them.
 */
export function serviceDeps(logger: Logger, metrics: ServiceMetrics): ServiceDeps {
  let inference: InferenceMetrics | undefined;
  let batching: BatchingMetrics | undefined;
  let preprocessing: PreprocessMetrics | undefined;
  const inferenceMetrics = (): InferenceMetrics => (inference ??= new InferenceMetrics(metrics));
  return {
    logger,
    trackPreprocessing(source) {
      preprocessing ??= new PreprocessMetrics(metrics, source);
    },
    get inference() {
      return inferenceMetrics();
    },
    get batching() {
      return (batching ??= new BatchingMetrics(inferenceMetrics()));
    },
  };
}

/** The line the host logs at fatal level when a runtime breaks. */
export interface FatalLog {
  readonly fields: { readonly event: string } & Record<string, unknown>;
  readonly message: string;
}

/** What a runtime reports to its host; `load` wires them in. */
export interface RuntimeHooks {
  /** After every executed batch, with the model's metrics label (metrics, session health). */
  onBatch(label: string, event: BatchEvent): void;
  /** Whenever a request has entered or left a queue (queue-depth gauge). */
  onQueueChange(): void;
  /**
   * The runtime is broken for good: the replica goes not ready, logs `log`, closes and exits 1 so
   * the orchestrator restarts it (ARCHITECTURE §8). `reason` becomes the slot's failure message.
   */
  onFatal(reason: string, log: FatalLog): void;
}

/** One backend gRPC service: how it loads its runtime and which gRPC service it registers. */
export interface ServiceSpec<R extends HostedRuntime> {
  /**
   * Adds the gRPC service(s) at module init, so the server listens while the runtime loads;
   * handlers that answer from the slot get MODEL_NOT_READY until it is ready.
   */
  register(server: GrpcServer, slot: ModelSlot<R>, deps: ServiceDeps): void;
  /** Loads the runtime once the listeners are up, with `hooks` wired into it. */
  load(deps: ServiceDeps, hooks: RuntimeHooks): Promise<R>;
  /** Hands the warm runtime to handlers that keep it themselves rather than read the slot (the decoder's). */
  attach?(runtime: R): void;
  /** Batched services: queue depth per model label, for the gauge KEDA scales on. */
  queueDepth?(runtime: R): ReturnType<QueueDepthSource>;
  /** Services that preprocess raw inputs: their pool's state, for the ibllm_preprocess_* series. */
  preprocessing?(runtime: R): PreprocessPoolSnapshot | undefined;
  /** Fields for the `service.ready` log line (providers, versions). */
  describe(runtime: R): Record<string, unknown>;
}

/**
 * Failed batches in a row (session errors, not bad requests) after which the session counts as
 * broken: the replica goes not-ready and exits so the orchestrator restarts it (ARCHITECTURE §8).
 * One failure could be a transient allocation failure; three in a row with no success is not.
 */
export const BROKEN_SESSION_FAILURES = 3;

export interface HostedServiceOptions<R extends HostedRuntime> {
  readonly service: string;
  readonly spec: ServiceSpec<R>;
  readonly deps: ServiceDeps;
  /** Exits the process; replaced in tests. */
  readonly exit?: (code: number) => void;
}

const HOST_OPTIONS = Symbol.for('imagebind.serving.service-host');

/**
 * A service's life in Nest: registers its gRPC service at module init (so the server can listen
 * while the runtime loads), loads and warms the runtime when bootstrap asks, and closes it after
 * the gRPC server has drained.
 */
@Injectable()
export class ServiceLifecycle<R extends HostedRuntime = HostedRuntime>
  implements OnModuleInit, OnApplicationShutdown
{
  readonly slot = new ModelSlot<R>();
  private failuresInARow = 0;
  private app: Pick<BootApp, 'close'> | undefined;

  constructor(
    @Inject(HOST_OPTIONS) private readonly options: HostedServiceOptions<R>,
    @Inject(GRPC_SERVER) private readonly grpc: GrpcServer,
  ) {}

  onModuleInit(): void {
    this.options.spec.register(this.grpc, this.slot, this.options.deps);
  }

  /** Loads and warms the runtime; the caller turns the server SERVING when this resolves. */
  async start(app: Pick<BootApp, 'close'>): Promise<Record<string, unknown>> {
    this.app = app;
    const { spec, deps } = this.options;
    try {
      const runtime = await spec.load(deps, {
        onBatch: (label, event) => this.onBatch(label, event),
        onQueueChange: () => deps.batching.refreshQueueDepth(),
        onFatal: (reason, log) => this.fatal(reason, log),
      });
      await runtime.warmup();
      this.slot.fill(runtime);
      spec.attach?.(runtime);
      const queueDepth = spec.queueDepth?.bind(spec);
      if (queueDepth !== undefined) deps.batching.track(() => queueDepth(runtime));
      const preprocessing = spec.preprocessing?.bind(spec);
      if (preprocessing !== undefined) deps.trackPreprocessing(() => preprocessing(runtime));
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
    if (this.failuresInARow < BROKEN_SESSION_FAILURES) return;
    const message = event.error instanceof Error ? event.error.message : 'a non-Error value was thrown';
    this.fatal(`${label}: ${this.failuresInARow} batches failed in a row: ${message}`, {
      fields: { event: 'session.broken', model: label, err: event.error },
      message: 'inference session is broken; exiting so the orchestrator restarts this replica',
    });
  }

  private fatal(reason: string, log: FatalLog): void {
    if (this.slot.state === 'failed') return;
    this.slot.fail(reason);
    this.grpc.setReady(false);
    this.options.deps.logger.fatal(log.fields, log.message);
    const exit = this.options.exit ?? ((code: number) => process.exit(code));
    const app = this.app;
    // Closing drains the calls in flight first, so they end with a status rather than a reset.
    if (app === undefined) exit(1);
    else
      app.close().then(
        () => exit(1),
        () => exit(1),
      );
  }
}

@Module({})
export class HostedServiceModule {
  static forRoot<R extends HostedRuntime>(
    options: HostedServiceOptions<R> & {
      readonly grpc: GrpcServer;
      readonly metrics: ServiceMetrics;
      readonly shutdownGraceMs: number;
    },
  ): DynamicModule {
    return {
      module: HostedServiceModule,
      imports: [
        ServiceHostModule.forRoot({
          grpc: options.grpc,
          metrics: options.metrics,
          shutdownGraceMs: options.shutdownGraceMs,
          // Ready only once the runtime has loaded and warmed up.
          readyOnStart: false,
        }),
      ],
      providers: [{ provide: HOST_OPTIONS, useValue: options }, ServiceLifecycle],
    };
  }
}

/**
 * Boots one backend gRPC service process (encoders, bind, decoder, retriever): env (fails fast
 * with what to set), JSON logs, metrics, the gRPC server with reflection, `spec` (which may open
 * what its handlers need before anything listens), the Nest app with /metrics /healthz /readyz,
 * then the runtime's load and warm-up, SERVING and the `service.ready` line; SIGTERM drains and
 * exits 0.
 */
export async function runService<S extends EnvSchema & ServiceSchema, R extends HostedRuntime>(
  service: string,
  schema: S,
  spec: (env: EnvOf<S>, deps: ServiceDeps) => ServiceSpec<R> | Promise<ServiceSpec<R>>,
): Promise<void> {
  const env = loadConfigOrExit(service, schema) as EnvOf<S> & ServiceEnv;
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
    const deps = serviceDeps(logger, metrics);
    module = HostedServiceModule.forRoot({
      service,
      spec: await spec(env, deps),
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
    warmup: async (app) => app.get<ServiceLifecycle<R>>(ServiceLifecycle).start(app),
  });
}
