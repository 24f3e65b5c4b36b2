import { Module, type DynamicModule } from '@nestjs/common';
import { ServiceHostModule, type GrpcServer } from '@imagebind-llm/grpc-kit';
import type { ServiceMetrics } from '@imagebind-llm/observability';
import { DecoderServiceImpl } from '@imagebind-llm/serving';
import { DecoderController } from './decoder.controller';

export interface DecoderModuleOptions {
  readonly grpc: GrpcServer;
  readonly metrics: ServiceMetrics;
  readonly shutdownGraceMs: number;
  readonly decoder: DecoderServiceImpl;
}

@Module({})
export class DecoderModule {
  static forRoot(options: DecoderModuleOptions): DynamicModule {
    return {
      module: DecoderModule,
      imports: [
        ServiceHostModule.forRoot({
          grpc: options.grpc,
          metrics: options.metrics,
          shutdownGraceMs: options.shutdownGraceMs,
          // Ready only once the model has loaded and warmed up (bootstrapService's warmup).
          readyOnStart: false,
        }),
      ],
      providers: [{ provide: DecoderServiceImpl, useValue: options.decoder }, DecoderController],
    };
  }
}
