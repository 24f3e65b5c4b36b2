import { join } from 'node:path';
import { goldenModelRepository, repoRoot } from './model-repo';
import { startProcess, type RunningProcess } from './process-runner';

/** One started service process and where it listens. */
export interface ServiceProcess {
  readonly name: string;
  readonly proc: RunningProcess;
  readonly grpcAddress: string;
  readonly httpBase: string;
}

export interface PlatformOptions {
  /** The model repository every service reads. */
  readonly repo: string;
  /** Decoder replicas (the gateway balances and resumes across them). Default 1. */
  readonly decoderReplicas?: number;
  /** encoder-vision replicas. Default 1. */
  readonly visionReplicas?: number;
  /** Extra environment for every process (e.g. LOG_LEVEL). */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra environment for the gateway only. */
  readonly gatewayEnv?: Readonly<Record<string, string>>;
}

export interface RunningPlatform {
  readonly services: ServiceProcess[];
  readonly gateway: ServiceProcess;
  byName(prefix: string): ServiceProcess[];
  stop(): Promise<void>;
}

const mainOf = (service: string): string => join(repoRoot(), 'services', service, 'dist', 'main.js');

/** Starts one compiled service on ephemeral ports and waits for its `service.ready` line. */
export async function startService(
  service: string,
  env: Readonly<Record<string, string>>,
  name = service,
  timeoutMs = 60_000,
): Promise<ServiceProcess> {
  const proc = startProcess(process.execPath, [mainOf(service)], {
    env: { PATH: process.env['PATH'], LOG_LEVEL: 'info', ...env },
  });
  try {
    const ready = await Promise.race([
      proc.waitForLine((l) => l['event'] === 'service.ready', timeoutMs),
      proc.exited().then(({ code }) => {
        throw new Error(`${name} exited with ${code} before it was ready:\n${proc.stderr()}`);
      }),
    ]);
    return {
      name,
      proc,
      grpcAddress: `127.0.0.1:${String(ready['grpcPort'])}`,
      httpBase: `http://127.0.0.1:${String(ready['httpPort'])}`,
    };
  } catch (error) {
    await proc.stop('SIGKILL');
    throw error;
  }
}

/**
 * A standalone gateway (the whole platform in one process) on the golden tiny-a repository, on
 * ephemeral ports; `env` adds or overrides variables (keys, limits, Redis, ...).
 */
export async function startStandaloneGateway(
  env: Readonly<Record<string, string>> = {},
  name = 'gateway',
): Promise<ServiceProcess> {
  return startService(
    'gateway',
    {
      GATEWAY_MODE: 'standalone',
      GATEWAY_MODEL_REPO: goldenModelRepository(),
      GATEWAY_GRPC_PORT: '0',
      GATEWAY_HTTP_PORT: '0',
      ...env,
    },
    name,
    120_000,
  );
}

/**
 * The distributed platform on loopback, every service a real process (ARCHITECTURE §2): four
 * encoders, retriever (embedded store, cache seeded from the repository), bind, N decoders and
 * the gateway in distributed mode pointing at all of them. Needs `npm run build` first.
 */
export async function startPlatform(options: PlatformOptions): Promise<RunningPlatform> {
  const common = { ...options.env, MODEL_REPO: options.repo, GRPC_PORT: '0', HTTP_PORT: '0' };
  const started: ServiceProcess[] = [];
  const launch = async (
    service: string,
    name: string,
    extra: Record<string, string> = {},
  ): Promise<ServiceProcess> => {
    const s = await startService(service, { ...common, ...extra }, name);
    started.push(s);
    return s;
  };
  try {
    const vision = await Promise.all(
      Array.from({ length: options.visionReplicas ?? 1 }, (_, i) =>
        launch('encoder-vision', `encoder-vision-${i}`),
      ),
    );
    const [audio, text, point, retriever, bind] = await Promise.all([
      launch('encoder-audio', 'encoder-audio'),
      launch('encoder-text', 'encoder-text'),
      launch('encoder-point', 'encoder-point'),
      launch('retriever', 'retriever', { RETRIEVER_SEED_FROM_REPO: options.repo }),
      launch('bind', 'bind'),
    ]);
    const decoders = await Promise.all(
      Array.from({ length: options.decoderReplicas ?? 1 }, (_, i) => launch('decoder', `decoder-${i}`)),
    );
    const list = (s: ServiceProcess[]): string => s.map((x) => x.grpcAddress).join(',');
    const gateway = await startService(
      'gateway',
      {
        ...options.env,
        GATEWAY_MODE: 'distributed',
        GATEWAY_GRPC_PORT: '0',
        GATEWAY_HTTP_PORT: '0',
        GATEWAY_ENCODER_VISION_TARGET: list(vision),
        GATEWAY_ENCODER_AUDIO_TARGET: audio.grpcAddress,
        GATEWAY_ENCODER_TEXT_TARGET: text.grpcAddress,
        GATEWAY_ENCODER_POINT_TARGET: point.grpcAddress,
        GATEWAY_RETRIEVER_TARGET: retriever.grpcAddress,
        GATEWAY_BIND_TARGET: bind.grpcAddress,
        GATEWAY_DECODER_TARGET: list(decoders),
        ...options.gatewayEnv,
      },
      'gateway',
    );
    started.push(gateway);
    return {
      services: started,
      gateway,
      byName: (prefix) => started.filter((s) => s.name.startsWith(prefix)),
      stop: async () => {
        await Promise.all(started.map(async (s) => s.proc.stop('SIGKILL')));
      },
    };
  } catch (error) {
    await Promise.all(started.map(async (s) => s.proc.stop('SIGKILL')));
    throw error;
  }
}
