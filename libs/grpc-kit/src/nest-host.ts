import {
  Inject,
  Injectable,
  Module,
  type BeforeApplicationShutdown,
  type DynamicModule,
  type OnApplicationBootstrap,
} from '@nestjs/common';
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
