import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { DomainError } from '@imagebind-llm/errors';
import { GRPC_SERVER, type GrpcServer } from '@imagebind-llm/grpc-kit';
import { gatewayV1, SERVICE_NAMES } from '@imagebind-llm/proto';
import { GatewayService } from './gateway.service';

/** Thin gRPC controller: binds the public services' methods to the gateway's logic. */
@Injectable()
export class GatewayController implements OnModuleInit {
  constructor(
    @Inject(GRPC_SERVER) private readonly server: GrpcServer,
    @Inject(GatewayService) private readonly gateway: GatewayService,
  ) {}

  onModuleInit(): void {
    this.server.addService(SERVICE_NAMES.gateway, gatewayV1.GatewayServiceService, {
      generate: (request, ctx) => this.gateway.generate(request, ctx),
      embed: (request) => this.gateway.embed(request),
      search: (request) => this.gateway.search(request),
      listModels: () => this.gateway.listModels(),
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
}
