import { Module, type DynamicModule } from '@nestjs/common';
import { ServiceHostModule, type GrpcServer } from '@imagebind-llm/grpc-kit';
import type { ServiceMetrics } from '@imagebind-llm/observability';
import { RetrieverServiceImpl } from '@imagebind-llm/serving';
import { RetrieverController } from './retriever.controller';

@Module({})
export class RetrieverModule {
  static forRoot(options: {
    grpc: GrpcServer;
    metrics: ServiceMetrics;
    shutdownGraceMs: number;
    retriever: RetrieverServiceImpl;
  }): DynamicModule {
    return {
      module: RetrieverModule,
      imports: [
        ServiceHostModule.forRoot({
          grpc: options.grpc,
          metrics: options.metrics,
          shutdownGraceMs: options.shutdownGraceMs,
          readyOnStart: false,
        }),
      ],
      providers: [{ provide: RetrieverServiceImpl, useValue: options.retriever }, RetrieverController],
    };
  }
}
