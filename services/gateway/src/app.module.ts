import { Module, type DynamicModule } from '@nestjs/common';
import { GrpcHostModule, GrpcServer } from '@imagebind-llm/grpc-kit';
import type { Logger, ServiceMetrics } from '@imagebind-llm/observability';
import type { GatewayEnv } from './env.schema';
import { GatewayController } from './gateway.controller';
import { GatewayService } from './gateway.service';
import { HttpController } from './http.controller';
import { GATEWAY_ENV, LOGGER, METRICS } from './tokens';

export interface GatewayModuleOptions {
  readonly env: GatewayEnv;
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  readonly grpc: GrpcServer;
}

@Module({})
export class GatewayModule {
  static forRoot(options: GatewayModuleOptions): DynamicModule {
    return {
      module: GatewayModule,
      imports: [
        GrpcHostModule.forRoot({
          server: options.grpc,
          shutdownGraceMs: options.env.SHUTDOWN_GRACE_MS,
          // The gateway holds no models: it is ready once it listens.
          readyOnStart: true,
        }),
      ],
      controllers: [HttpController],
      providers: [
        { provide: GATEWAY_ENV, useValue: options.env },
        { provide: LOGGER, useValue: options.logger },
        { provide: METRICS, useValue: options.metrics },
        GatewayService,
        GatewayController,
      ],
    };
  }
}
