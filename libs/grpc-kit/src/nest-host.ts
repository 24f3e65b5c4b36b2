import {
  Inject,
  Injectable,
  Module,
  type BeforeApplicationShutdown,
  type DynamicModule,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { flushTracing } from '@imagebind-llm/observability';
import { GrpcServer } from './server';

/** Injection token of the process's GrpcServer. */
export const GRPC_SERVER = Symbol.for('imagebind.grpc-kit.server');
const GRPC_HOST_OPTIONS = Symbol.for('imagebind.grpc-kit.host-options');

export interface GrpcHostOptions {
  readonly server: GrpcServer;
  /** How long SIGTERM waits for calls in flight before aborting them. */
  readonly shutdownGraceMs: number;
  /**
   * Report SERVING as soon as the server listens. Services with models leave this false and call
   * `server.setReady(true)` after their sessions have loaded and warmed up.
   */
  readonly readyOnStart: boolean;
}

/**
 * Hosts the grpc-js server in Nest's lifecycle: controllers register their services in
 * `onModuleInit`; the server binds in `onApplicationBootstrap`, after every module is initialised;
 * on shutdown (enableShutdownHooks + SIGTERM) it drains before Nest closes the other providers.
 */
@Injectable()
export class GrpcServerLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  constructor(@Inject(GRPC_HOST_OPTIONS) private readonly options: GrpcHostOptions) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.options.server.start();
    if (this.options.readyOnStart) this.options.server.setReady(true);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.options.server.shutdown(this.options.shutdownGraceMs);
  }
}

@Module({})
export class GrpcHostModule {
  static forRoot(options: GrpcHostOptions): DynamicModule {
    return {
      module: GrpcHostModule,
      global: true,
      providers: [
        { provide: GRPC_HOST_OPTIONS, useValue: options },
        { provide: GRPC_SERVER, useValue: options.server },
        GrpcServerLifecycle,
      ],
      exports: [GRPC_SERVER],
    };
  }
}

/** The part of a Nest application the signal handler needs. */
export interface ClosableApp {
  close(): Promise<void>;
}

export interface ShutdownLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * SIGTERM/SIGINT (or the launcher's IPC channel closing) → `app.close()` (readiness off, drain,
 * close providers) → exit 0. Nest's own
 * shutdown hooks re-raise the signal, so the process would die "by SIGTERM"; orchestrators and
 * supervisors read a clean 0 better. A second signal, or a failing close, exits 1 at once.
 */
export function closeOnSignals(
  app: ClosableApp,
  logger: ShutdownLogger,
  signals: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'],
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) {
      logger.error({ event: 'shutdown.forced', signal }, 'second signal during shutdown; exiting now');
      exit(1);
      return;
    }
    closing = true;
    logger.info({ event: 'shutdown.begin', signal }, 'shutting down');
    app.close().then(
      async () => {
        // Spans of the last calls are still batched in memory: send them before exiting.
        await flushTracing();
        logger.info({ event: 'shutdown.done' }, 'shut down cleanly');
        exit(0);
      },
      (error: unknown) => {
        logger.error({ event: 'shutdown.failed', err: error }, 'shutdown failed');
        exit(1);
      },
    );
  };
  for (const s of signals) process.on(s, onSignal);
  // Started by a launcher with an IPC channel (`ibllm serve`): when the launcher dies, even by
  // SIGKILL, the channel closes; drain and exit as on SIGTERM instead of living on as an orphan.
  if (process.send !== undefined) {
    process.once('disconnect', () => {
      if (!closing) onSignal('SIGTERM');
    });
  }
}
