import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import {
  describeError,
  isTransient,
  ItemProcessor,
  type ApiCall,
  type PlatformApi,
} from '@imagebind-llm/batch-items';
import { readFloat32Tensor } from '@imagebind-llm/grpc-kit';
import { requestLogger, type Logger } from '@imagebind-llm/observability';
import type { gatewayV1 } from '@imagebind-llm/proto';
import {
  BatchJobStore,
  createRedis,
  startBatchWorker,
  waitForReady,
  type BatchWorker,
} from '@imagebind-llm/queue';
import type { HopContext } from '@imagebind-llm/serving/platform';
import type { GatewayEnv } from '../env.schema';
import { GatewayService } from '../gateway.service';
import { GATEWAY_ENV, LOGGER } from '../tokens';
import { batchMediaPolicy } from './batch-backend';

/**
 * The platform API of the in-process worker: this gateway's own orchestration, called directly.
 * Items skip the public admission (API keys, the per-key token bucket): the worker is part of the
 * server, not a client, so it never drains the anonymous tenant's 600/min bucket that the user
 * on loopback is also using. Its limit is its concurrency, GATEWAY_BATCH_WORKER_CONCURRENCY items
 * in flight, which the encoders' batchers see exactly like as many concurrent online calls.
 */
export function inProcessPlatformApi(gateway: GatewayService, logger: Logger): PlatformApi {
  let sequence = 0;
  const context = (call: ApiCall): HopContext => {
    const requestId = `batch-${process.pid}-${++sequence}`;
    return {
      requestId,
      logger: requestLogger(logger, requestId),
      deadline: Date.now() + call.timeoutMs,
      signal: AbortSignal.any([call.signal, AbortSignal.timeout(call.timeoutMs)]),
      ...(call.trace === undefined ? {} : { trace: call.trace }),
    };
  };
  return {
    embed: async (inputs, call) => {
      const response = await gateway.embed({ inputs, includeFused: true, cache: undefined }, context(call));
      return readFloat32Tensor(response.fused, 'fused').data;
    },
    generate: async (item, call) => {
      const request: gatewayV1.GenerateRequest = {
        inputs: item.inputs,
        instruction: item.instruction,
        input: item.input,
        cache: item.cache,
        sampling: item.sampling,
        stopping: item.maxNewTokens === undefined ? undefined : { maxNewTokens: item.maxNewTokens },
      };
      let text = '';
      for await (const chunk of gateway.generate(request, context(call))) text += chunk.text;
      return text;
    },
  };
}

/** Whether this gateway runs a batch worker in process (standalone, Redis set, not turned off). */
export function runsInProcessWorker(env: GatewayEnv): boolean {
  return env.GATEWAY_MODE === 'standalone' && env.GATEWAY_REDIS_URL !== undefined && env.GATEWAY_BATCH_WORKER;
}

/**
 * `ibllm serve --standalone` with a Redis URL is the whole platform in one process, batch jobs
 * included (issue #16 item 4): this worker consumes the same queue as batch-worker processes would
 * (several may share it), with the gateway's media policy for item URIs. It starts once the app is
 * initialised and drains before the backends close on shutdown (beforeApplicationShutdown runs
 * ahead of every onApplicationShutdown). Index kinds need the retriever's upsert over gRPC, so they
 * stay with batch-worker processes (RETRIEVER_TARGET); here they fail with FAILED_PRECONDITION.
 */
@Injectable()
export class InProcessBatchWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private worker: BatchWorker | undefined;
  private closeRedis: (() => void) | undefined;

  constructor(
    @Inject(GATEWAY_ENV) private readonly env: GatewayEnv,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(GatewayService) private readonly gateway: GatewayService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const env = this.env;
    if (!runsInProcessWorker(env)) return;
    const logger = this.logger.child({ component: 'batch-worker' });
    const redis = createRedis(env.GATEWAY_REDIS_URL!, 'worker', (error) =>
      logger.warn({ event: 'redis.error', err: error.message }, 'Redis connection error; reconnecting'),
    );
    this.closeRedis = () => redis.disconnect();
    await waitForReady(redis);
    const processor = new ItemProcessor(
      inProcessPlatformApi(this.gateway, logger),
      undefined,
      batchMediaPolicy(env),
      env.GATEWAY_BATCH_ITEM_TIMEOUT_MS,
    );
    this.worker = await startBatchWorker({
      connection: redis,
      prefix: env.GATEWAY_QUEUE_PREFIX,
      store: new BatchJobStore(redis, { prefix: `${env.GATEWAY_QUEUE_PREFIX}:batch:` }),
      concurrency: env.GATEWAY_BATCH_WORKER_CONCURRENCY,
      processItem: async (ctx) => processor.process(ctx),
      isTransient,
      describeError,
      logger,
    });
    logger.info(
      { event: 'batch.worker.started', concurrency: env.GATEWAY_BATCH_WORKER_CONCURRENCY },
      'batch worker running in process (GATEWAY_BATCH_WORKER=false turns it off)',
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.worker?.close();
    this.closeRedis?.();
  }
}
