import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { GRPC_SERVER, type GrpcServer } from '@imagebind-llm/grpc-kit';
import { decoderV1, SERVICE_NAMES } from '@imagebind-llm/proto';
import { DecoderServiceImpl } from '@imagebind-llm/serving';

/** Thin gRPC controller: registers DecoderService and releases the model after the server drained. */
@Injectable()
export class DecoderController implements OnModuleInit, OnApplicationShutdown {
  constructor(
    @Inject(GRPC_SERVER) private readonly server: GrpcServer,
    @Inject(DecoderServiceImpl) private readonly decoder: DecoderServiceImpl,
  ) {}

  onModuleInit(): void {
    this.server.addService(SERVICE_NAMES.decoder, decoderV1.DecoderServiceService, this.decoder.handlers());
  }

  // Runs after GrpcServerLifecycle.beforeApplicationShutdown has drained the streams in flight.
  async onApplicationShutdown(): Promise<void> {
    await this.decoder.runtime?.close();
  }
}
