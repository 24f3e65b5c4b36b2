import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DomainError } from '@imagebind-llm/errors';
import { GRPC_SERVER, type CallContext, type GrpcServer } from '@imagebind-llm/grpc-kit';
import { gatewayV1, SERVICE_NAMES } from '@imagebind-llm/proto';
import type { AccessControl } from './access';
import type { PlatformBackends } from './backends/backends.port';
import { GatewayService } from './gateway.service';
import { ACCESS, BACKENDS } from './tokens';

function credentialsOf(ctx: CallContext): { authorization?: string; apiKey?: string } {
  const auth = ctx.metadata.get('authorization')[0];
  const key = ctx.metadata.get('x-api-key')[0];
  return {
    ...(typeof auth === 'string' ? { authorization: auth } : {}),
    ...(typeof key === 'string' ? { apiKey: key } : {}),
  };
}

/** Thin gRPC controller: admission (API key, rate limit), then the gateway's logic. */
@Injectable()
export class GatewayController implements OnModuleInit, OnApplicationShutdown {
  constructor(
    @Inject(GRPC_SERVER) private readonly server: GrpcServer,
    @Inject(GatewayService) private readonly gateway: GatewayService,
    @Inject(ACCESS) private readonly access: AccessControl,
    @Inject(BACKENDS) private readonly backends: PlatformBackends,
  ) {}

  onModuleInit(): void {
    const admit = (ctx: CallContext): string => this.access.admit(credentialsOf(ctx));
    const gateway = this.gateway;
    this.server.addService(SERVICE_NAMES.gateway, gatewayV1.GatewayServiceService, {
      generate: async function* (request, ctx) {
        admit(ctx);
        yield* gateway.generate(request, ctx);
      },
      embed: async (request, ctx) => {
        admit(ctx);
        return gateway.embed(request, ctx);
      },
      search: async (request, ctx) => {
        admit(ctx);
        return gateway.search(request, ctx);
      },
      listModels: async (_request, ctx) => {
        admit(ctx);
        return gateway.listModels(ctx);
      },
    });
    const batchJobsMissing = (): Promise<never> =>
      Promise.reject(
        DomainError.notImplemented(
          'batch jobs are not available in this build: the queue workers are not deployed yet',
        ),
      );
    this.server.addService(SERVICE_NAMES.batchJobs, gatewayV1.BatchJobServiceService, {
      submitBatchJob: batchJobsMissing,
      getBatchJob: batchJobsMissing,
      listBatchJobs: batchJobsMissing,
      cancelBatchJob: batchJobsMissing,
      // eslint-disable-next-line require-yield -- nothing to stream until batch jobs exist
      streamBatchJobResults: async function* () {
        await batchJobsMissing();
      },
    });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.backends.close();
  }
}
