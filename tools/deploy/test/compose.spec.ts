// Small test: docker-compose.yml and the GPU overlay read statically and checked against the code:
// every image, file and mount they name exists, every variable they set is one the service's env
// schema declares (and the result parses), every address points at a service of the stack on the
// port that service listens on. compose.int-spec.ts runs docker-compose itself on the same files.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseEnv } from '@imagebind-llm/config';
import { describe, expect, it } from 'vitest';
import {
  interpolate,
  loadCompose,
  MissingVariableError,
  readComposeYaml,
  repoRoot,
  type ComposeProject,
  type ComposeService,
  type Env,
} from './compose-model';
import { APP_SERVICES, serviceDirectories } from './compose-services';
import { healthcheckOf, imageStage, readDockerfile, stageEnv } from './dockerfile-parse';

const BASE = ['docker-compose.yml'];
const WITH_GPU = ['docker-compose.yml', 'docker-compose.gpu.yml'];
/** The two settings the stack requires; nothing else, so every default applies. */
const KEYS: Env = { GATEWAY_API_KEYS: 'tenant-a:key-a', BATCH_WORKER_API_KEY: 'worker-key' };
/** Where the model repository is mounted from when MODELS_DIR is unset (`ibllm models demo` output). */
const MODELS_DEFAULT = '.models/demo';

/** Ports of the third-party services, as their images listen by default. */
const INFRA_PORTS: Record<string, { image: RegExp; port: number; scheme: string }> = {
  redis: { image: /^redis:/, port: 6379, scheme: 'redis:' },
  qdrant: { image: /^qdrant\/qdrant:/, port: 6333, scheme: 'http:' },
};

const appServices = (project: ComposeProject): ComposeService[] =>
  Object.values(project.services).filter((s) => APP_SERVICES[s.name] !== undefined);

/** What the container sees: its image's ENV, then compose's environment on top. */
function effectiveEnv(service: ComposeService): Record<string, string> {
  const runtime = imageStage(readDockerfile(service.build!.dockerfile), service.build!.args);
  return { ...stageEnv(runtime, service.build!.args), ...service.environment };
}

function listenPorts(service: ComposeService): { grpc: number; http: number } {
  const app = APP_SERVICES[service.name]!;
  const env = effectiveEnv(service);
  return { grpc: Number(env[app.vars.grpcPort]), http: Number(env[app.vars.httpPort]) };
}

function hasHealthcheck(service: ComposeService): boolean {
  if (service.healthcheck !== undefined) return !service.healthcheck.disable;
  if (service.build === undefined) return false;
  const health = healthcheckOf(imageStage(readDockerfile(service.build.dockerfile), service.build.args));
  return health !== undefined && health.command !== 'NONE';
}

/** host:port, host:port,... or scheme://host:port → the addresses named. */
function addresses(value: string): { scheme: string | undefined; host: string; port: number }[] {
  return value.split(',').map((entry) => {
    const text = entry.trim().replace(/^dns:\/\/\//, '');
    if (/^[a-z][a-z0-9+.-]*:\/\//.test(text)) {
      const url = new URL(text);
      return { scheme: url.protocol, host: url.hostname, port: Number(url.port) };
    }
    const colon = text.lastIndexOf(':');
    return { scheme: undefined, host: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
  });
}

/** The variables of a service that name another service: *_TARGET (gRPC) and *_URL. */
function addressVariables(service: ComposeService): [string, string][] {
  return Object.entries(service.environment).filter(([name]) => /_(TARGET|URL)$/.test(name));
}

/** Checks every wiring rule for one project (the base file alone, or with the GPU overlay). */
function checkWiring(project: ComposeProject): void {
  for (const service of appServices(project)) {
    const app = APP_SERVICES[service.name]!;
    const where = `compose service ${service.name}`;
    const env = effectiveEnv(service);

    // Names the schema declares; values it accepts; nothing taken silently from the shell.
    for (const name of Object.keys(service.environment)) {
      expect(Object.keys(app.schema), `${where}: ${name} is not in the service's env schema`).toContain(name);
    }
    expect(service.passThrough, `${where}: variables without a value`).toEqual([]);
    expect(() => parseEnv(service.name, app.schema, env), where).not.toThrow();
    // The ports are stated in the file (the addresses below rely on them), and listen on 0.0.0.0.
    expect(service.environment[app.vars.grpcPort], `${where}: ${app.vars.grpcPort}`).toBeDefined();
    expect(service.environment[app.vars.httpPort], `${where}: ${app.vars.httpPort}`).toBeDefined();
    expect(env[app.vars.grpcHost], where).toBe('0.0.0.0');
    expect(env[app.vars.httpHost], where).toBe('0.0.0.0');

    for (const [name, value] of addressVariables(service)) {
      for (const address of addresses(value)) {
        const what = `${where}: ${name}=${value}`;
        const target = project.services[address.host];
        expect(target, `${what} names no service of the stack`).toBeDefined();
        if (APP_SERVICES[address.host] !== undefined) {
          expect(name, `${what}: the services talk gRPC`).toMatch(/_TARGET$/);
          expect(address.port, `${what}: ${address.host} listens for gRPC on another port`).toBe(
            listenPorts(target!).grpc,
          );
        } else {
          const infra = INFRA_PORTS[address.host];
          expect(infra, `${what}: unknown third-party service`).toBeDefined();
          expect(target!.image, what).toMatch(infra!.image);
          expect(address.scheme, what).toBe(infra!.scheme);
          expect(address.port, what).toBe(infra!.port);
        }
        // Reachable (a shared network), started first, and only once it is ready.
        expect(
          service.networks.filter((n) => target!.networks.includes(n)),
          `${what}: no shared network`,
        ).not.toEqual([]);
        expect(service.dependsOn[address.host], `${what}: depends_on ${address.host}`).toBe(
          'service_healthy',
        );
        expect(hasHealthcheck(target!), `${what}: ${address.host} has no healthcheck`).toBe(true);
      }
    }

    // Read-only root file system; /tmp is the one writable place.
    expect(service.readOnly, `${where}: read_only`).toBe(true);
    expect(service.tmpfs, `${where}: tmpfs`).toContain('/tmp');
    // Every folder the service is told about is mounted (models read-only).
    for (const [name, value] of Object.entries(service.environment)) {
      if (!value.startsWith('/')) continue;
      const mount = service.volumes.find((v) => value === v.target || value.startsWith(`${v.target}/`));
      expect(mount, `${where}: ${name}=${value} is not on a mounted volume`).toBeDefined();
      if (mount!.target === '/models') expect(mount!.readOnly, `${where}: /models read-only`).toBe(true);
    }
    if (env['MODEL_REPO'] !== undefined) {
      expect(
        service.volumes.some((v) => v.target === env['MODEL_REPO'] && v.readOnly),
        `${where}: MODEL_REPO mounted read-only`,
      ).toBe(true);
    }
  }

  for (const service of Object.values(project.services)) {
    for (const dependency of Object.keys(service.dependsOn)) {
      expect(project.services[dependency], `${service.name} depends on ${dependency}`).toBeDefined();
    }
    for (const network of service.networks) {
      expect(Object.keys(project.networks), `${service.name}: network ${network}`).toContain(network);
    }
    for (const volume of service.volumes.filter((v) => v.type === 'volume' && v.source !== '')) {
      expect(project.volumes, `${service.name}: volume ${volume.source}`).toContain(volume.source);
    }
  }
}

describe('compose reader', () => {
  it('interpolates like docker-compose', () => {
    const env = { SET: 'v', EMPTY: '' };
    expect(interpolate('${SET}-${UNSET:-d}-${EMPTY:-d}-${EMPTY-d}-$SET-$$SET', env)).toBe('v-d-d--v-$SET');
    expect(() => interpolate('${EMPTY:?say why}', env)).toThrow(MissingVariableError);
    expect(() => interpolate('${UNSET?say why}', env)).toThrow(/UNSET must be set: say why/);
    expect(interpolate('${EMPTY?fine}', env)).toBe('');
  });
});

describe('docker-compose.yml', () => {
  const project = loadCompose(BASE, KEYS);

  it('runs every service, built from the shared Dockerfile for that service, plus Redis and Qdrant', () => {
    const names = serviceDirectories();
    for (const name of names) {
      const service = project.services[name];
      expect(service, `compose service ${name}`).toBeDefined();
      expect(service!.build, name).toEqual({
        context: '.',
        dockerfile: 'deploy/docker/Dockerfile',
        args: { SERVICE: name },
      });
      expect(service!.image, name).toBe(`imagebind-llm/${name}:dev`);
    }
    expect(Object.keys(project.services).sort()).toEqual([...names, 'qdrant', 'redis'].sort());
  });

  it('names only files and folders that exist', () => {
    for (const service of Object.values(project.services)) {
      if (service.build !== undefined) {
        const context = join(repoRoot, service.build.context);
        expect(statSync(context).isDirectory(), `${service.name}: build context`).toBe(true);
        expect(existsSync(join(context, service.build.dockerfile)), `${service.name}: dockerfile`).toBe(true);
      }
      for (const file of service.envFiles) {
        expect(existsSync(join(repoRoot, file)), `${service.name}: env_file ${file}`).toBe(true);
      }
      for (const mount of service.volumes.filter((v) => v.type === 'bind')) {
        const path = relative(repoRoot, mount.source);
        if (path === MODELS_DEFAULT) continue; // built by `ibllm models demo`; checked below
        expect(existsSync(mount.source), `${service.name}: bind mount ${mount.written}`).toBe(true);
      }
    }
  });

  it('mounts the model repository from MODELS_DIR, by default the untracked demo repository', () => {
    const sources = new Set(
      Object.values(project.services).flatMap((s) =>
        s.volumes.filter((v) => v.target === '/models').map((v) => relative(repoRoot, v.source)),
      ),
    );
    expect([...sources]).toEqual([MODELS_DEFAULT]);
    expect(readFileSync(join(repoRoot, '.gitignore'), 'utf8').split('\n')).toContain('.models/');
    const moved = loadCompose(BASE, { ...KEYS, MODELS_DIR: '/srv/models' });
    for (const service of Object.values(moved.services)) {
      for (const mount of service.volumes.filter((v) => v.target === '/models')) {
        expect(mount.source, service.name).toBe('/srv/models');
      }
    }
  });

  it('wires every service to the others by name, on the ports they listen on', () => {
    checkWiring(project);
  });

  it('gives the gateway every backend, and the gateway and the worker one queue', () => {
    const gateway = project.services['gateway']!;
    expect(gateway.environment['GATEWAY_MODE']).toBe('distributed');
    const targets = Object.keys(APP_SERVICES['gateway']!.schema).filter((n) => /_TARGET$/.test(n));
    expect(targets.length).toBeGreaterThan(0);
    for (const name of targets) expect(gateway.environment[name], `gateway ${name}`).toBeTruthy();
    const worker = project.services['batch-worker']!;
    expect(gateway.environment['GATEWAY_REDIS_URL']).toBe(worker.environment['REDIS_URL']);
    const gatewayPrefix = effectiveEnv(gateway)['GATEWAY_QUEUE_PREFIX'] ?? 'ibllm';
    expect(gatewayPrefix).toBe(effectiveEnv(worker)['QUEUE_PREFIX'] ?? 'ibllm');
  });

  it('requires the API keys, with a message that says what to set', () => {
    for (const missing of ['GATEWAY_API_KEYS', 'BATCH_WORKER_API_KEY']) {
      const env = { ...KEYS, [missing]: undefined };
      expect(() => loadCompose(BASE, env), missing).toThrow(
        new RegExp(`${missing} must be set: set ${missing} to`),
      );
    }
    // The worker's key is one the gateway accepts.
    const keys = project.services['gateway']!.environment['GATEWAY_API_KEYS']!.split(',');
    expect(keys).toContain('tenant-a:key-a');
    const workerKey = project.services['batch-worker']!.environment['GATEWAY_API_KEY'];
    expect(keys.map((k) => k.slice(k.indexOf(':') + 1))).toContain(workerKey);
  });

  it('publishes only the gateway, on 127.0.0.1 unless told otherwise', () => {
    for (const service of Object.values(project.services)) {
      if (service.name !== 'gateway') expect(service.ports, `${service.name} publishes ports`).toEqual([]);
    }
    const gateway = project.services['gateway']!;
    const ports = listenPorts(gateway);
    expect(gateway.ports.map((p) => [p.hostIp, p.target]).sort()).toEqual(
      [
        ['127.0.0.1', ports.grpc],
        ['127.0.0.1', ports.http],
      ].sort(),
    );
    const open = loadCompose(BASE, { ...KEYS, GATEWAY_PUBLISH_HOST: '0.0.0.0' });
    expect(open.services['gateway']!.ports.map((p) => p.hostIp)).toEqual(['0.0.0.0', '0.0.0.0']);
    // Everything but the gateway and the worker stays on the network without a route out.
    expect(project.networks['backend']?.internal).toBe(true);
    for (const service of Object.values(project.services)) {
      const edge = service.networks.filter((n) => !project.networks[n]?.internal);
      expect(edge.length > 0, `${service.name} on a network with a route out`).toBe(
        ['gateway', 'batch-worker'].includes(service.name),
      );
    }
  });

  it('runs pinned Redis (noeviction + AOF) and Qdrant (its client minor version), both with volumes and healthchecks', () => {
    const redis = project.services['redis']!;
    expect(redis.image).toMatch(/^redis:7\.\d+\.\d+(-[a-z0-9.]+)?$/);
    const command = redis.raw['command'] as string[];
    expect(command.join(' ')).toContain('--maxmemory-policy noeviction');
    expect(command.join(' ')).toContain('--appendonly yes');
    expect(redis.volumes.map((v) => v.target)).toContain('/data');
    expect(redis.readOnly).toBe(true);

    const qdrant = project.services['qdrant']!;
    const version = /^qdrant\/qdrant:v(\d+)\.(\d+)\.(\d+)$/.exec(qdrant.image ?? '');
    expect(version, qdrant.image).not.toBeNull();
    // @qdrant/js-client-rest warns when the server's major.minor differs from its own.
    const retrieverPkg = JSON.parse(
      readFileSync(join(repoRoot, 'services/retriever/package.json'), 'utf8'),
    ) as {
      dependencies: Record<string, string>;
    };
    const client = retrieverPkg.dependencies['@qdrant/js-client-rest']!.split('.');
    expect(`${version![1]}.${version![2]}`).toBe(`${client[0]}.${client[1]}`);
    expect(qdrant.volumes.map((v) => v.target)).toContain('/qdrant/storage');

    for (const infra of [redis, qdrant]) {
      expect(hasHealthcheck(infra), infra.name).toBe(true);
      expect(
        infra.volumes.every((v) => v.type === 'volume'),
        infra.name,
      ).toBe(true);
    }
  });
});

describe('docker-compose.gpu.yml', () => {
  const base = loadCompose(BASE, KEYS);
  const project = loadCompose(WITH_GPU, KEYS);
  const overlay = readComposeYaml('docker-compose.gpu.yml');
  const gpuServices = Object.values(project.services).filter((s) => s.gpuDevices.length > 0);

  it('only changes services of the base file', () => {
    expect(Object.keys(project.services).sort()).toEqual(Object.keys(base.services).sort());
    for (const name of Object.keys(overlay['services'] as Record<string, unknown>)) {
      expect(base.services[name], name).toBeDefined();
    }
  });

  it('puts the decoder and the heavy encoders on NVIDIA GPUs, with the CUDA image and provider', () => {
    expect(gpuServices.map((s) => s.name)).toContain('decoder');
    expect(gpuServices.map((s) => s.name)).toContain('encoder-vision');
    for (const service of gpuServices) {
      const where = `GPU service ${service.name}`;
      for (const device of service.gpuDevices) {
        expect(device.driver, where).toBe('nvidia');
        expect(device.capabilities, where).toContain('gpu');
      }
      expect(service.build?.dockerfile, where).toBe('deploy/docker/Dockerfile.gpu');
      expect(existsSync(join(repoRoot, service.build!.context, service.build!.dockerfile)), where).toBe(true);
      expect(service.build!.args['SERVICE'], where).toBe(service.name);
      // The image's ports (build arguments) are the ports compose wires the other services to.
      const ports = listenPorts(base.services[service.name]!);
      expect(Number(service.build!.args['GRPC_PORT']), where).toBe(ports.grpc);
      expect(Number(service.build!.args['HTTP_PORT']), where).toBe(ports.http);
      expect(effectiveEnv(service)['EXECUTION_PROVIDERS'], where).toBe('cuda,cpu');
      // A tag of its own: building the GPU image must not overwrite the CPU one.
      expect(service.image, where).not.toBe(base.services[service.name]!.image);
    }
  });

  it('keeps the other services on the CPU', () => {
    for (const service of appServices(project).filter((s) => s.gpuDevices.length === 0)) {
      expect(effectiveEnv(service)['EXECUTION_PROVIDERS'] ?? 'cpu', service.name).not.toMatch(/cuda/);
      expect(service.build, service.name).toEqual(base.services[service.name]!.build);
    }
  });

  it('still wires every service correctly', () => {
    checkWiring(project);
  });
});

describe('docker-compose.ci.yml (the CI override: tools/docker/ci-images.sh)', () => {
  const ci = loadCompose(['docker-compose.yml', 'docker-compose.ci.yml'], { ...KEYS, IMAGE_TAG: 'ci' });
  const base = loadCompose(BASE, KEYS);

  it('keeps every app service as docker-compose.yml defines it, on the images CI built', () => {
    expect(Object.keys(ci.services).sort()).toEqual(Object.keys(base.services).sort());
    for (const service of appServices(ci)) {
      expect(service.image, service.name).toBe(`imagebind-llm/${service.name}:ci`);
      expect(service.readOnly, service.name).toBe(true);
      expect(service.networks, service.name).toEqual(base.services[service.name]!.networks);
      if (service.name !== 'retriever') {
        expect(service.environment, service.name).toEqual(
          loadCompose(BASE, { ...KEYS, IMAGE_TAG: 'ci' }).services[service.name]!.environment,
        );
      }
    }
  });

  it("swaps Redis for Debian's, and the retriever onto its embedded store on a volume", () => {
    const redis = ci.services['redis']!;
    expect(redis.image).toBe('ibllm-ci/redis:bookworm');
    const command = redis.raw['command'] as string[];
    expect(command).toEqual(
      expect.arrayContaining(['--maxmemory-policy', 'noeviction', '--appendonly', 'yes']),
    );
    expect(redis.volumes.map((v) => v.target)).toContain('/data');
    const retriever = ci.services['retriever']!;
    expect(retriever.environment['RETRIEVER_DRIVER']).toBe('embedded');
    expect(retriever.environment['RETRIEVER_DATA_DIR']).toBe('/data');
    const data = retriever.volumes.find((v) => v.target === '/data');
    expect(data?.type).toBe('volume');
    expect(ci.volumes).toContain(data!.source);
    // Qdrant cannot be had here: a placeholder that only keeps depends_on satisfied.
    expect(ci.services['qdrant']!.image).toBe('ibllm-ci/debian:bookworm');
  });
});
