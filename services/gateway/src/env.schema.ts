import { env, envVar, type EnvOf } from '@imagebind-llm/config';

/** Every setting of the gateway process. Nothing else in the service reads process.env. */
export const gatewayEnvSchema = {
  GATEWAY_GRPC_HOST: envVar(env.host('127.0.0.1'), 'interface the public gRPC API binds; 0.0.0.0 in a pod'),
  GATEWAY_GRPC_PORT: envVar(env.port(50051), 'port of the public gRPC API; 0 picks a free port'),
  GATEWAY_HTTP_HOST: envVar(
    env.host('127.0.0.1'),
    'interface of the HTTP listener (/metrics, /healthz, /readyz)',
  ),
  GATEWAY_HTTP_PORT: envVar(env.port(8080), 'port of the HTTP listener; 0 picks a free port'),
  GATEWAY_MAX_MESSAGE_BYTES: envVar(
    env.positiveInt(64 * 1024 * 1024, 1024 * 1024 * 1024),
    'largest gRPC request accepted, in bytes (inline media counts); larger ones get RESOURCE_EXHAUSTED',
  ),
  GATEWAY_MAX_INPUTS: envVar(env.positiveInt(16, 1024), 'most multimodal inputs one request may carry'),
  GATEWAY_MAX_INPUT_BYTES: envVar(
    env.positiveInt(32 * 1024 * 1024, 1024 * 1024 * 1024),
    'largest single inline input (image, audio, video, point cloud), in bytes',
  ),
  SHUTDOWN_GRACE_MS: envVar(
    env.positiveInt(25_000, 600_000),
    'how long SIGTERM waits for calls in flight; keep below the pod terminationGracePeriodSeconds',
  ),
  LOG_LEVEL: envVar(env.logLevel(), 'minimum level of the JSON logs'),
};

export type GatewayEnv = EnvOf<typeof gatewayEnvSchema>;
