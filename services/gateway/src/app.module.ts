import { Module, type DynamicModule } from '@nestjs/common';
import { ServiceHostModule, type GrpcServer } from '@imagebind-llm/grpc-kit';
import type { Logger, ServiceMetrics } from '@imagebind-llm/observability';
import type { AccessControl } from './access';
import type { PlatformBackends } from '@imagebind-llm/serving/platform';
import type { BatchBackend } from './batch/batch-backend';
import { BatchController } from './batch/batch.controller';
import { InProcessBatchWorker } from './batch/in-process-worker';
import type { GatewayEnv } from './env.schema';
import { GatewayController } from './gateway.controller';
import { GatewayService } from './gateway.service';
import { OpenAiController } from './openai.controller';
import { PlaygroundController } from './playground/playground.controller';
import type { StaticSite } from './playground/static-site';
import { ACCESS, BACKENDS, BATCH, GATEWAY_ENV, LOGGER, METRICS, PLAYGROUND_SITE } from './tokens';

export interface GatewayModuleOptions {
  readonly env: GatewayEnv;
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  readonly grpc: GrpcServer;
  readonly backends: PlatformBackends;
  readonly access: AccessControl;
  /** Undefined when batch jobs are not configured (no Redis). */
  readonly batch: BatchBackend | undefined;
  /** The built web playground; undefined when it is off or not built. */
  readonly playground: StaticSite | undefined;
}

@Module({})
export class GatewayModule {
  static forRoot(options: GatewayModuleOptions): DynamicModule {
    return {
      module: GatewayModule,
      imports: [
        ServiceHostModule.forRoot({
          grpc: options.grpc,
          metrics: options.metrics,
          shutdownGraceMs: options.env.SHUTDOWN_GRACE_MS,
          // Ready once its backends answer (checked in main before flipping SERVING).
          readyOnStart: false,
        }),
      ],
      controllers: [OpenAiController, BatchController, PlaygroundController],
      providers: [
        { provide: GATEWAY_ENV, useValue: options.env },
        { provide: LOGGER, useValue: options.logger },
        { provide: METRICS, useValue: options.metrics },
        { provide: BACKENDS, useValue: options.backends },
        { provide: ACCESS, useValue: options.access },
        { provide: BATCH, useValue: options.batch ?? null },
        { provide: PLAYGROUND_SITE, useValue: options.playground ?? null },
        GatewayService,
        GatewayController,
        InProcessBatchWorker,
      ],
    };
  }
}
