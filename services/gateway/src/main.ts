import 'reflect-metadata';
import { join } from 'node:path';
import { EXIT_CONFIG, loadConfigOrExit } from '@imagebind-llm/config';
import { bootstrapService, createServiceParts } from '@imagebind-llm/grpc-kit';
import type { Logger, ServiceMetrics } from '@imagebind-llm/observability';
import { createRedis, waitForReady } from '@imagebind-llm/queue';
import type { PlatformBackends } from '@imagebind-llm/serving/platform';
import { createAccessControl } from './access';
import { RemoteBackends, type RemoteTargets } from './backends/remote.backends';
import { GatewayModule } from './app.module';
import { gatewayConfigProblems } from './config-checks';
import { createBatchBackend } from './batch/batch-backend';
import { gatewayEnvSchema, type GatewayEnv } from './env.schema';
import { StaticSite } from './playground/static-site';
import { RedisRateLimiter } from './rest/redis-rate-limiter';
import { OpenAiErrorFilter } from './http/openai-error.filter';
import { restBodyGuard } from './rest/rest-boundary';

/** Where `npm run build` puts the playground: services/gateway/web/dist, beside src/ and dist/. */
const BUILT_PLAYGROUND = join(__dirname, '..', 'web', 'dist');

/**
 * The playground bundle, or undefined when it is off. A folder named in GATEWAY_PLAYGROUND_DIR
 * must hold a build (fail fast); the default one may be missing in a gateway built without the
 * web bundle, which then serves a page saying so.
 */
function loadPlayground(env: GatewayEnv, logger: Logger): StaticSite | undefined {
  if (!env.GATEWAY_PLAYGROUND) return undefined;
  if (env.GATEWAY_PLAYGROUND_DIR !== undefined) return StaticSite.load(env.GATEWAY_PLAYGROUND_DIR);
  try {
    return StaticSite.load(BUILT_PLAYGROUND);
  } catch (error) {
    logger.warn({ event: 'playground.missing', err: (error as Error).message }, 'playground not served');
    return undefined;
  }
}

function remoteTargets(env: GatewayEnv): RemoteTargets {
  const missing = (
    ['GATEWAY_RETRIEVER_TARGET', 'GATEWAY_BIND_TARGET', 'GATEWAY_DECODER_TARGET'] as const
  ).filter((k) => env[k] === undefined);
  if (missing.length > 0) {
    throw new Error(
      `distributed mode needs ${missing.join(', ')} (or run GATEWAY_MODE=standalone with GATEWAY_MODEL_REPO)`,
    );
  }
  const encoders: RemoteTargets['encoders'] = {};
  if (env.GATEWAY_ENCODER_VISION_TARGET !== undefined) {
    encoders.image = env.GATEWAY_ENCODER_VISION_TARGET;
    encoders.video = env.GATEWAY_ENCODER_VISION_TARGET;
  }
  if (env.GATEWAY_ENCODER_AUDIO_TARGET !== undefined) encoders.audio = env.GATEWAY_ENCODER_AUDIO_TARGET;
  if (env.GATEWAY_ENCODER_TEXT_TARGET !== undefined) encoders.text = env.GATEWAY_ENCODER_TEXT_TARGET;
  if (env.GATEWAY_ENCODER_POINT_TARGET !== undefined) encoders.point = env.GATEWAY_ENCODER_POINT_TARGET;
  return {
    encoders,
    retriever: env.GATEWAY_RETRIEVER_TARGET!,
    bind: env.GATEWAY_BIND_TARGET!,
    decoder: env.GATEWAY_DECODER_TARGET!,
  };
}

async function createBackends(
  env: GatewayEnv,
  logger: Logger,
  metrics: ServiceMetrics,
): Promise<PlatformBackends> {
  if (env.GATEWAY_MODE === 'distributed') {
    return new RemoteBackends(remoteTargets(env), {
      hopTimeoutMs: env.GATEWAY_HOP_TIMEOUT_MS,
      maxMessageBytes: env.GATEWAY_MAX_MESSAGE_BYTES,
    });
  }
  if (env.GATEWAY_MODEL_REPO === undefined) {
    throw new Error(
      'standalone mode needs GATEWAY_MODEL_REPO (build one with `ibllm models demo --out REPO`)',
    );
  }
  // Loaded only in standalone mode: the distributed gateway never loads onnxruntime.
  const { createStandaloneBackends } = await import('./backends/local.backends.js');
  return createStandaloneBackends({ ...env, GATEWAY_MODEL_REPO: env.GATEWAY_MODEL_REPO }, logger, metrics);
}

/**
 * The rate-limit buckets every replica shares, in the Redis of GATEWAY_REDIS_URL; undefined (each
 * process keeps its own) without one. A Redis that is down at start is not fatal here: the
 * limiter falls back to this process's buckets until it answers (see RedisRateLimiter).
 */
async function sharedRateLimiter(env: GatewayEnv, logger: Logger): Promise<RedisRateLimiter | undefined> {
  if (env.GATEWAY_REDIS_URL === undefined) return undefined;
  // Its own connection, failing fast while Redis is down (producer role: no offline queue);
  // ioredis reconnects by itself, and the limiter logs the outage once instead of every retry.
  const redis = createRedis(env.GATEWAY_REDIS_URL, 'producer', (error) =>
    logger.debug({ event: 'ratelimit.redis_error', err: error.message }, 'rate-limit Redis error'),
  );
  await waitForReady(redis, 5_000).catch(() => undefined);
  return new RedisRateLimiter({ redis, prefix: `${env.GATEWAY_QUEUE_PREFIX}:ratelimit:`, logger });
}

async function main(): Promise<void> {
  const env = loadConfigOrExit('gateway', gatewayEnvSchema);
  // Values the schema cannot judge alone (allow-lists, keys, rules across variables, such as no
  // unauthenticated bind beyond 127.0.0.1 / ::1): exit 78 with one line, like the schema.
  const problems = gatewayConfigProblems(env);
  if (problems.length > 0) {
    process.stderr.write(`invalid configuration for gateway: ${problems.join('; ')}\n`);
    process.exit(EXIT_CONFIG);
  }
  const { logger, metrics, grpc } = createServiceParts({
    service: 'gateway',
    logLevel: env.LOG_LEVEL,
    host: env.GATEWAY_GRPC_HOST,
    port: env.GATEWAY_GRPC_PORT,
    maxMessageBytes: env.GATEWAY_MAX_MESSAGE_BYTES,
    otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT,
  });
  const shared = await sharedRateLimiter(env, logger);
  const access = createAccessControl(env, shared === undefined ? {} : { shared });
  logger.info(
    {
      event: 'ratelimit.store',
      store: access.rateLimitStore,
      rpm: env.GATEWAY_RATE_LIMIT_RPM,
      burst: env.GATEWAY_RATE_LIMIT_BURST,
    },
    access.rateLimitStore === 'redis'
      ? 'rate limits shared by every replica through Redis (GATEWAY_REDIS_URL)'
      : 'rate limits kept in this process only: each replica allows the full rate (set GATEWAY_REDIS_URL to share them)',
  );
  const started = Date.now();
  const backends = await createBackends(env, logger, metrics);
  logger.info({ event: 'backends.ready', mode: backends.mode, ms: Date.now() - started }, 'backends ready');
  const playground = loadPlayground(env, logger);
  const batch = await createBatchBackend(env, logger, metrics);
  await bootstrapService({
    service: 'gateway',
    module: GatewayModule.forRoot({ env, logger, metrics, grpc, backends, access, batch, playground }),
    grpc,
    logger,
    http: { host: env.GATEWAY_HTTP_HOST, port: env.GATEWAY_HTTP_PORT },
    jsonBodyLimitBytes: env.GATEWAY_MAX_BODY_BYTES,
    configureHttp: (app) => {
      // One error shape for the whole REST surface (docs/rest-api.md), decided before bodies are read.
      app.use(restBodyGuard(env.GATEWAY_MAX_BODY_BYTES));
      app.useGlobalFilters(new OpenAiErrorFilter(logger));
    },
    warmup: () =>
      Promise.resolve({
        mode: backends.mode,
        auth: access.required ? 'api-key' : 'none',
        rateLimits: access.rateLimitStore,
        batch: batch === undefined ? 'off' : 'on',
        playground: playground === undefined ? 'off' : `${playground.size} files`,
      }),
  });
}

main().catch((error: unknown) => {
  // One line that says what failed; the orchestrator restarts the pod.
  process.stderr.write(
    `gateway failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
