import {
  Inject,
  Injectable,
  Module,
  type BeforeApplicationShutdown,
  type DynamicModule,
} from '@nestjs/common';
import { ServiceHostModule, type GrpcServer } from '@imagebind-llm/grpc-kit';
import type { ServiceMetrics } from '@imagebind-llm/observability';

/** Something to stop on SIGTERM: the BullMQ worker (it finishes its running items first). */
export interface Closable {
  close(): Promise<void>;
}

const WORKER = Symbol.for('imagebind.batch-worker.worker');

/** Holds the worker handle (filled once it started) and drains it before the process exits. */
@Injectable()
export class WorkerLifecycle implements BeforeApplicationShutdown {
  constructor(@Inject(WORKER) private readonly holder: { worker?: Closable }) {}

  async beforeApplicationShutdown(): Promise<void> {
    await this.holder.worker?.close();
  }
}

@Module({})
export class BatchWorkerModule {
  static forRoot(options: {
    grpc: GrpcServer;
    metrics: ServiceMetrics;
    shutdownGraceMs: number;
    holder: { worker?: Closable };
  }): DynamicModule {
    return {
      module: BatchWorkerModule,
      imports: [
        ServiceHostModule.forRoot({
          grpc: options.grpc,
          metrics: options.metrics,
          shutdownGraceMs: options.shutdownGraceMs,
          readyOnStart: false,
        }),
      ],
      providers: [{ provide: WORKER, useValue: options.holder }, WorkerLifecycle],
    };
  }
}
