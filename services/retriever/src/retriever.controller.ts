import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { GRPC_SERVER, type GrpcServer } from '@imagebind-llm/grpc-kit';
import { retrieverV1, SERVICE_NAMES } from '@imagebind-llm/proto';
import { RetrieverServiceImpl } from '@imagebind-llm/serving';

/** Thin gRPC controller: registers RetrieverService and closes the store on shutdown. */
@Injectable()
export class RetrieverController implements OnModuleInit, OnApplicationShutdown {
  constructor(
    @Inject(GRPC_SERVER) private readonly server: GrpcServer,
    @Inject(RetrieverServiceImpl) private readonly retriever: RetrieverServiceImpl,
  ) {}

  onModuleInit(): void {
    this.server.addService(
      SERVICE_NAMES.retriever,
      retrieverV1.RetrieverServiceService,
      this.retriever.handlers(),
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await this.retriever.store.flush();
    await this.retriever.store.close();
  }
}
