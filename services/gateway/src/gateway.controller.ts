import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DomainError } from '@imagebind-llm/errors';
import { GRPC_SERVER, type CallContext, type GrpcServer } from '@imagebind-llm/grpc-kit';
import { gatewayV1, SERVICE_NAMES } from '@imagebind-llm/proto';
import { credentialsFrom, type AccessControl, type Credentials } from './access';
import type { PlatformBackends } from '@imagebind-llm/serving/platform';
import type { BatchBackend } from './batch/batch-backend';
import { GatewayService } from './gateway.service';
import { ACCESS, BACKENDS, BATCH } from './tokens';

/** A call's credentials from its metadata (binary `-bin` values are never credentials). */
function credentialsOf(ctx: CallContext): Credentials {
  return credentialsFrom((name) => {
    const value = ctx.metadata.get(name)[0];
    return typeof value === 'string' ? value : undefined;
  });
}

/** Thin gRPC controller: admission (API key, rate limit), then the gateway's logic. */
@Injectable()
export class GatewayController implements OnModuleInit, OnApplicationShutdown {
  constructor(
    @Inject(GRPC_SERVER) private readonly server: GrpcServer,
    @Inject(GatewayService) private readonly gateway: GatewayService,
    @Inject(ACCESS) private readonly access: AccessControl,
    @Inject(BACKENDS) private readonly backends: PlatformBackends,
    @Inject(BATCH) private readonly batch: BatchBackend | null,
  ) {}

  onModuleInit(): void {
    const admit = (ctx: CallContext, requests?: number | (() => number)): Promise<string> =>
      this.access.admit(credentialsOf(ctx), requests);
    const gateway = this.gateway;
    this.server.addService(SERVICE_NAMES.gateway, gatewayV1.GatewayServiceService, {
      generate: async function* (request, ctx) {
        await admit(ctx);
        yield* gateway.generate(request, ctx);
      },
      embed: async (request, ctx) => {
        await admit(ctx);
        return gateway.embed(request, ctx);
      },
      embedMany: async (request, ctx) => {
        // Who calls, then the call's shape (no token spent on a call that cannot run), then one
        // token per request.
        await admit(ctx, () => gateway.checkEmbedMany(request));
        return gateway.embedMany(request, ctx);
      },
      search: async (request, ctx) => {
        await admit(ctx);
        return gateway.search(request, ctx);
      },
      listModels: async (_request, ctx) => {
        await admit(ctx);
        return gateway.listModels(ctx);
      },
    });
    const batch = this.batch?.service;
    if (batch === undefined) {
      const missing = (): Promise<never> =>
        Promise.reject(
          DomainError.notImplemented(
            'batch jobs are not configured on this gateway: set GATEWAY_REDIS_URL and run batch workers',
          ),
        );
      this.server.addService(SERVICE_NAMES.batchJobs, gatewayV1.BatchJobServiceService, {
        submitBatchJob: missing,
        getBatchJob: missing,
        listBatchJobs: missing,
        cancelBatchJob: missing,
        // eslint-disable-next-line require-yield -- nothing to stream without batch jobs
        streamBatchJobResults: async function* () {
          await missing();
        },
      });
    } else {
      this.server.addService(SERVICE_NAMES.batchJobs, gatewayV1.BatchJobServiceService, {
        submitBatchJob: async (request, ctx) => batch.submit(request, await admit(ctx)),
        getBatchJob: async (request, ctx) => batch.get(request.jobId, await admit(ctx)),
        listBatchJobs: async (request, ctx) => batch.list(request, await admit(ctx)),
        cancelBatchJob: async (request, ctx) => batch.cancel(request.jobId, await admit(ctx)),
        streamBatchJobResults: async function* (request, ctx) {
          yield* batch.results(request, await admit(ctx), ctx.signal);
        },
      });
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.backends.close();
    await this.batch?.close();
  }
}
