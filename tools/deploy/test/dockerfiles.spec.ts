// Small test: every image definition read statically (the build machines have no Docker engine):
// the shared CPU Dockerfile built for each service and the shared GPU Dockerfile, checked against
// the env schema the service parses at boot, and the build scripts they share (deploy/docker/*.sh).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseEnv } from '@imagebind-llm/config';
import { describe, expect, it } from 'vitest';
import { loadCompose, repoRoot } from './compose-model';
import {
  APP_SERVICES,
  needsFfmpeg,
  needsMediaAddon,
  serviceDirectories,
  type AppService,
} from './compose-services';
import {
  execForm,
  healthcheckOf,
  imageStage,
  instructionsOf,
  isPinnedImage,
  parseDockerfile,
  readDockerfile,
  shellWords,
  stageArgs,
  stageEnv,
  stageLabels,
  substitute,
  type Dockerfile,
  type Stage,
} from './dockerfile-parse';

const CPU_DOCKERFILE = 'deploy/docker/Dockerfile';
const GPU_DOCKERFILE = 'deploy/docker/Dockerfile.gpu';
const BUILD_SCRIPT = 'deploy/docker/build-service.sh';
const STAGE_SCRIPT = 'deploy/docker/stage-service.sh';
const HEALTHCHECK_SCRIPT = 'deploy/docker/healthcheck.mjs';
const read = (path: string): string => readFileSync(join(repoRoot, path), 'utf8');
const finalStage = (file: Dockerfile): Stage => file.stages[file.stages.length - 1]!;
const lastOf = (stage: Stage, keyword: string): string | undefined =>
  instructionsOf(stage, keyword).pop()?.args;

/** Variables the images set for the runtime itself rather than for the service's schema. */
const RUNTIME_VARS = new Set(['NODE_ENV', 'HOME', 'CUDA_CACHE_PATH', 'NVIDIA_DRIVER_CAPABILITIES']);

/** The checks every image definition of a service shares, CPU or GPU. */
function checkRuntimeStage(
  file: Dockerfile,
  service: AppService,
  buildArgs: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const where = `${file.path} (${service.name})`;
  const stage = imageStage(file, buildArgs);
  const args = stageArgs(stage, buildArgs);
  const env = stageEnv(stage, buildArgs);

  // Non-root, and numeric so that Kubernetes' runAsNonRoot can verify it.
  const user = lastOf(stage, 'USER');
  expect(user, `${where}: USER`).toBeDefined();
  expect(user, `${where}: USER`).toMatch(/^[1-9]\d*(:\d+)?$/);
  // Set once, after every build step that runs as root (the image's CMD then runs as that user).
  const keywords = stage.instructions.map((i) => i.keyword);
  expect(
    keywords.filter((k) => k === 'USER'),
    `${where}: one USER`,
  ).toHaveLength(1);
  expect(keywords.indexOf('USER'), `${where}: USER after the last RUN`).toBeGreaterThan(
    keywords.lastIndexOf('RUN'),
  );

  // Read-only root file system: HOME (and any cache below it) in /tmp, the one writable mount.
  expect(env['HOME'], `${where}: HOME`).toMatch(/^\/tmp(\/|$)/);
  if (env['CUDA_CACHE_PATH'] !== undefined) expect(env['CUDA_CACHE_PATH']).toMatch(/^\/tmp\//);
  expect(env['NODE_ENV'], where).toBe('production');

  // Every other variable is one the service declares, and the whole environment parses.
  for (const name of Object.keys(env).filter((n) => !RUNTIME_VARS.has(n))) {
    expect(Object.keys(service.schema), `${where}: ENV ${name} is not in the service's env schema`).toContain(
      name,
    );
  }
  expect(() => parseEnv(service.name, service.schema, env), where).not.toThrow();

  // Listeners on every interface, on the ports the service uses by default; EXPOSE says the same.
  expect(env[service.vars.grpcHost], `${where}: ${service.vars.grpcHost}`).toBe('0.0.0.0');
  expect(env[service.vars.httpHost], `${where}: ${service.vars.httpHost}`).toBe('0.0.0.0');
  expect(Number(env[service.vars.grpcPort]), `${where}: ${service.vars.grpcPort}`).toBe(
    service.defaultPorts.grpc,
  );
  expect(Number(env[service.vars.httpPort]), `${where}: ${service.vars.httpPort}`).toBe(
    service.defaultPorts.http,
  );
  const exposed = instructionsOf(stage, 'EXPOSE')
    .flatMap((e) => shellWords(substitute(e.args, args)))
    .map((p) => Number(p.replace(/\/tcp$/, '')))
    .sort((a, b) => a - b);
  expect(exposed, `${where}: EXPOSE`).toEqual(
    [service.defaultPorts.grpc, service.defaultPorts.http].sort((a, b) => a - b),
  );

  // HEALTHCHECK: node's fetch of /readyz, on the variable that holds this service's HTTP port.
  const health = healthcheckOf(stage);
  expect(health, `${where}: HEALTHCHECK`).toBeDefined();
  expect(health!.command, `${where}: HEALTHCHECK in exec form`).toBeInstanceOf(Array);
  const [node, script, portVar = 'HTTP_PORT', ...extra] = health!.command as string[];
  expect([node, script, extra], `${where}: HEALTHCHECK CMD`).toEqual(['node', '/app/healthcheck.mjs', []]);
  expect(portVar, `${where}: the healthcheck reads the service's HTTP port variable`).toBe(
    service.vars.httpPort,
  );
  expect(health!.options['timeout'], `${where}: HEALTHCHECK --timeout`).toBeDefined();
  expect(health!.options['start-period'], `${where}: HEALTHCHECK --start-period`).toBeDefined();

  // /app holds the staged tree (stage-service.sh puts healthcheck.mjs at its root).
  expect(lastOf(stage, 'WORKDIR'), where).toBe('/app');
  const staged = instructionsOf(stage, 'COPY').filter((c) =>
    /--from=build\s+\/out\/\s+(\.\/|\/app\/?)$/.test(c.args),
  );
  expect(staged, `${where}: COPY --from=build /out/ ./`).toHaveLength(1);

  // OCI labels.
  const labels = stageLabels(stage);
  for (const key of ['title', 'description', 'licenses', 'version', 'revision', 'base.name']) {
    expect(
      labels[`org.opencontainers.image.${key}`],
      `${where}: LABEL org.opencontainers.image.${key}`,
    ).toBeTruthy();
  }
  expect(substitute(labels['org.opencontainers.image.title']!, args), where).toContain(
    `imagebind-llm-${service.name}`,
  );
  expect(labels['org.opencontainers.image.licenses'], where).toBe(
    (JSON.parse(read(`services/${service.name}/package.json`)) as { license: string }).license,
  );
  return env;
}

/** No image copies model files in; models are mounted at run time (ARCHITECTURE §4). */
function checkNoModels(file: Dockerfile): void {
  for (const stage of file.stages) {
    expect(instructionsOf(stage, 'ADD'), `${file.path}: use COPY, not ADD`).toEqual([]);
    for (const copy of instructionsOf(stage, 'COPY')) {
      const sources = shellWords(copy.args)
        .filter((w) => !w.startsWith('--'))
        .slice(0, -1);
      for (const source of sources) {
        expect(source, `${file.path}:${copy.line} copies model files`).not.toMatch(
          /(^|\/)\.?models(\/|$)|\.(onnx|pth|safetensors)$|knn\.index/,
        );
      }
    }
  }
}

/** The ARGs declared before the first FROM, with their defaults. */
function globalArgsOf(file: Dockerfile): Record<string, string | undefined> {
  return Object.fromEntries(
    file.globalArgs.map((a) => {
      const [name = '', value] = (shellWords(a.args)[0] ?? '').split('=');
      return [name, value];
    }),
  );
}

/** A stage's base image as built by default (its FROM with the global ARG defaults). */
const baseOf = (file: Dockerfile, stage: Stage): string => substitute(stage.from, globalArgsOf(file));

/** The official Node image every Dockerfile defaults to (the CPU images and the GPU build stage). */
const OFFICIAL_NODE = /^docker\.io\/library\/node:20\.\d+\.\d+-bookworm-slim$/;

/**
 * The stage takes its base from the build argument `variable`, whose default (a global ARG) is a
 * pinned official image: CI passes locally made equivalents (tools/docker/ci-images.sh) without
 * tagging anything under an official name. A final stage also names that base in its OCI label.
 */
function checkBaseArgument(file: Dockerfile, stage: Stage, variable: string, official: RegExp): void {
  const where = `${file.path} (stage ${stage.name ?? 'final'})`;
  expect(stage.from, `${where}: FROM \${${variable}}`).toBe(`\${${variable}}`);
  const fallback = globalArgsOf(file)[variable];
  expect(fallback, `${where}: ARG ${variable}=<pinned official image> before the first FROM`).toBeDefined();
  expect(fallback, `${where}: ARG ${variable}`).toMatch(official);
  expect(isPinnedImage(fallback!), `${where}: ${fallback} is pinned`).toBe(true);
  if (stage === finalStage(file)) {
    expect(stageLabels(stage)['org.opencontainers.image.base.name'], where).toBe(`\${${variable}}`);
    expect(Object.keys(stageArgs(stage, {})), `${where}: ARG ${variable} (for the label)`).toContain(
      variable,
    );
  }
}

function checkPinnedBases(file: Dockerfile): void {
  const globals = globalArgsOf(file);
  const stageNames = new Set<string>();
  for (const stage of file.stages) {
    const image = substitute(stage.from, globals);
    if (!stageNames.has(image)) {
      expect(isPinnedImage(image), `${file.path}: FROM ${image} is not pinned to a version`).toBe(true);
    }
    if (stage.name !== undefined) stageNames.add(stage.name);
  }
}

describe('the Dockerfile reader', () => {
  it('joins continuations, drops comments inside them and reads ENV, HEALTHCHECK and pins', () => {
    const file = parseDockerfile(
      [
        'ARG BASE=node:20.20.2-bookworm-slim',
        'FROM ${BASE} AS build',
        'RUN a \\',
        '  # a comment inside the instruction',
        ' && b',
        'FROM node:latest',
        'ENV A=1 \\',
        '    B="x y" C=${A}',
        'HEALTHCHECK --interval=5s --timeout=2s CMD ["node", "h.mjs"]',
      ].join('\n'),
      'inline',
    );
    expect(file.stages.map((s) => [s.from, s.name])).toEqual([
      ['${BASE}', 'build'],
      ['node:latest', undefined],
    ]);
    expect(instructionsOf(file.stages[0]!, 'RUN')[0]!.args).toBe('a && b');
    expect(stageEnv(file.stages[1]!)).toEqual({ A: '1', B: 'x y', C: '1' });
    expect(healthcheckOf(file.stages[1]!)).toEqual({
      options: { interval: '5s', timeout: '2s' },
      command: ['node', 'h.mjs'],
    });
    expect(isPinnedImage('node:latest')).toBe(false);
    expect(isPinnedImage('node:20-bookworm-slim')).toBe(false);
    expect(isPinnedImage('node')).toBe(false);
    expect(isPinnedImage('node:20.20.2-bookworm-slim')).toBe(true);
    expect(isPinnedImage('localhost:5000/x:1.2.3')).toBe(true);
    expect(isPinnedImage('localhost:5000/x')).toBe(false);
    expect(() => {
      checkPinnedBases(file);
    }).toThrow(/node:latest is not pinned/);
  });

  it('follows FROM <stage> through a global build argument, inheriting the earlier instructions', () => {
    const file = parseDockerfile(
      [
        'ARG BASE=node:20.20.2-bookworm-slim',
        'ARG PICK',
        'FROM ${BASE} AS one',
        'ENV A=1',
        'CMD ["one"]',
        'FROM ${BASE} AS two',
        'ENV A=2',
        'CMD ["two"]',
        'FROM ${PICK}',
        'USER 1000',
      ].join('\n'),
      'inline',
    );
    const picked = imageStage(file, { PICK: 'two' });
    expect(picked.from).toBe('node:20.20.2-bookworm-slim');
    expect(stageEnv(picked)).toEqual({ A: '2' });
    expect(execForm(lastOf(picked, 'CMD') ?? '')).toEqual(['two']);
    expect(lastOf(picked, 'USER')).toBe('1000');
    expect(stageEnv(imageStage(file, { PICK: 'one' }))).toEqual({ A: '1' });
    // Not a stage: an image, with nothing inherited.
    expect(imageStage(file, { PICK: 'debian:12.1.0' }).instructions.map((i) => i.keyword)).toEqual(['USER']);
  });

  it('catches an image that copies models in or runs as root', () => {
    const bad = parseDockerfile(
      ['FROM node:20.20.2-bookworm-slim', 'COPY .models/demo /models', 'USER root'].join('\n'),
      'bad',
    );
    expect(() => {
      checkNoModels(bad);
    }).toThrow(/copies model files/);
    expect(lastOf(finalStage(bad), 'USER')).not.toMatch(/^[1-9]\d*(:\d+)?$/);
  });
});

describe('CPU images: deploy/docker/Dockerfile, built with --build-arg SERVICE=<name>', () => {
  const cpu = readDockerfile(CPU_DOCKERFILE);
  const build = cpu.stages.find((s) => s.name === 'build')!;
  const serviceStages = cpu.stages.filter((s) => s.name?.startsWith('service-'));
  const imageFor = (name: string): Stage => imageStage(cpu, { SERVICE: name });

  it('has a stage for every service, and the test knows every service', () => {
    const dirs = serviceDirectories();
    expect(dirs.length).toBeGreaterThan(0);
    expect(Object.keys(APP_SERVICES).sort()).toEqual(dirs);
    expect(serviceStages.map((s) => s.name!.slice('service-'.length)).sort()).toEqual(dirs);
    // The per-service Dockerfiles this file replaced stay gone: one definition per image.
    for (const dir of dirs)
      expect(existsSync(join(repoRoot, 'services', dir, 'Dockerfile')), dir).toBe(false);
  });

  it("builds the image FROM the stage that SERVICE names, and the service's code in the build stage", () => {
    const final = finalStage(cpu);
    expect(final.from).toBe('service-${SERVICE}');
    expect(globalArgsOf(cpu)).toHaveProperty('SERVICE', undefined);
    expect(stageEnv(build)['ONNXRUNTIME_NODE_INSTALL']).toBe('skip');
    // The workspace step comes before ARG SERVICE, so it is one cached layer for all nine images.
    const steps = build.instructions.map((i) => `${i.keyword} ${i.args}`);
    const workspace = steps.indexOf(`RUN sh ${BUILD_SCRIPT} --workspace`);
    const arg = steps.indexOf('ARG SERVICE');
    expect(workspace).toBeGreaterThanOrEqual(0);
    expect(arg).toBeGreaterThan(workspace);
    expect(steps.indexOf(`RUN sh ${BUILD_SCRIPT} "$SERVICE"`)).toBeGreaterThan(arg);
    // A service stage takes nothing from a build argument and copies nothing in: it is the same in
    // every build, so the classic builder (which builds every stage) takes it from its cache.
    for (const stage of serviceStages) {
      expect(stage.from, stage.name).toBe('${NODE_IMAGE}');
      const keywords = new Set(stage.instructions.map((i) => i.keyword));
      for (const keyword of keywords) {
        expect(
          ['LABEL', 'RUN', 'ENV', 'EXPOSE', 'HEALTHCHECK', 'CMD'],
          `${stage.name}: ${keyword}`,
        ).toContain(keyword);
      }
      expect(JSON.stringify(stage.instructions), stage.name).not.toMatch(/\$\{?[A-Z]/);
    }
    // The shared part: every image runs as uid 1000 and stops on SIGTERM.
    expect(lastOf(final, 'STOPSIGNAL')).toBe('SIGTERM');
  });

  it('pins every base image, takes them from ARG NODE_IMAGE and copies no model files', () => {
    checkNoModels(cpu);
    checkBaseArgument(cpu, build, 'NODE_IMAGE', OFFICIAL_NODE);
    for (const stage of serviceStages) checkBaseArgument(cpu, stage, 'NODE_IMAGE', OFFICIAL_NODE);
    for (const name of serviceDirectories()) {
      const base = substitute(imageFor(name).from, globalArgsOf(cpu));
      expect(isPinnedImage(base), `${name}: FROM ${base}`).toBe(true);
    }
    const final = finalStage(cpu);
    expect(stageLabels(final)['org.opencontainers.image.base.name']).toBe('${NODE_IMAGE}');
    expect(Object.keys(stageArgs(final, {})), 'ARG NODE_IMAGE (for the label)').toContain('NODE_IMAGE');
  });

  describe.each(serviceDirectories())('%s', (name) => {
    const service = APP_SERVICES[name]!;
    const where = `${CPU_DOCKERFILE} (SERVICE=${name})`;

    it('runs non-root on a read-only root with a /readyz healthcheck, on the service ports', () => {
      const env = checkRuntimeStage(cpu, service, { SERVICE: name });
      if (Object.keys(service.schema).includes('EXECUTION_PROVIDERS')) {
        expect(env['EXECUTION_PROVIDERS'], `${where}: the CPU image runs on the CPU`).toBe('cpu');
        expect(env['MODEL_REPO'], where).toBe('/models');
      }
      expect(lastOf(imageFor(name), 'STOPSIGNAL'), where).toBe('SIGTERM');
    });

    it("starts the service's entry point as PID 1", () => {
      const pkg = JSON.parse(read(`services/${name}/package.json`)) as { main: string };
      const cmd = execForm(lastOf(imageFor(name), 'CMD') ?? '');
      expect(cmd, `${where}: CMD in exec form`).toEqual([
        'node',
        join('services', name, pkg.main).replace(/\\/g, '/'),
      ]);
    });

    it('installs ffmpeg exactly when the service decodes video or audio', () => {
      const runs = instructionsOf(imageFor(name), 'RUN').map((r) => r.args);
      expect(
        runs.some((r) => /apt-get install .*\bffmpeg\b/.test(r)),
        `${where}: ffmpeg`,
      ).toBe(needsFfmpeg(name));
    });

    it('installs libjpeg62-turbo exactly when the service runs the ibllm_media addon', () => {
      const runs = instructionsOf(imageFor(name), 'RUN').map((r) => r.args);
      expect(
        runs.some((r) => /apt-get install .*\blibjpeg62-turbo\b/.test(r)),
        `${where}: libjpeg62-turbo`,
      ).toBe(needsMediaAddon(name));
    });
  });
});

describe('GPU image: deploy/docker/Dockerfile.gpu', () => {
  const gpu = readDockerfile(GPU_DOCKERFILE);
  const build = gpu.stages.find((s) => s.name === 'build')!;
  const runtime = finalStage(gpu);

  it('runs on a pinned CUDA 12 runtime with cuDNN 9, and the same Node as the CPU images', () => {
    checkPinnedBases(gpu);
    checkNoModels(gpu);
    // From CUDA 12.4 on, nvidia/cuda's "-cudnn-" tags carry cuDNN 9 (before: "-cudnn8-", "-cudnn9-");
    // onnxruntime-node 1.30's CUDA provider is built for CUDA 12.x + cuDNN 9.x.
    const runtimeBase = baseOf(gpu, runtime);
    const cuda = /^docker\.io\/nvidia\/cuda:12\.(\d+)\.\d+-cudnn-runtime-ubuntu\d+\.\d+$/.exec(runtimeBase);
    expect(cuda, `FROM ${runtimeBase}`).not.toBeNull();
    expect(Number(cuda![1])).toBeGreaterThanOrEqual(4);
    const cpu = readDockerfile(CPU_DOCKERFILE);
    expect(baseOf(gpu, build)).toBe(baseOf(cpu, cpu.stages[0]!));
    expect(instructionsOf(runtime, 'COPY').map((c) => c.args)).toContain(
      '--from=build /usr/local/bin/node /usr/local/bin/node',
    );
  });

  it('takes its bases from ARG NODE_IMAGE (build) and ARG CUDA_IMAGE (runtime)', () => {
    checkBaseArgument(gpu, build, 'NODE_IMAGE', OFFICIAL_NODE);
    checkBaseArgument(gpu, runtime, 'CUDA_IMAGE', /^docker\.io\/nvidia\/cuda:/);
  });

  it("carries Debian's Vulkan loader and asks the container toolkit for the Vulkan ICD (WebGPU)", () => {
    // The loader is installed from Debian in the (Debian) build stage and copied to the runtime.
    const runs = instructionsOf(build, 'RUN').map((r) => r.args);
    expect(
      runs.some((r) => /apt-get install .*\blibvulkan1\b/.test(r) && r.includes('/vulkan/')),
      `${GPU_DOCKERFILE}: libvulkan1 in the build stage`,
    ).toBe(true);
    const copies = instructionsOf(runtime, 'COPY').map((c) => c.args);
    expect(copies, `${GPU_DOCKERFILE}: the loader in the runtime stage`).toContain(
      '--from=build /vulkan/ /usr/local/lib/',
    );
    expect(instructionsOf(runtime, 'RUN').map((r) => r.args)).toContain('ldconfig');
    // "graphics" makes the NVIDIA container toolkit mount the Vulkan ICD (its default: compute,utility).
    const capabilities = (stageEnv(runtime)['NVIDIA_DRIVER_CAPABILITIES'] ?? '').split(',').sort();
    expect(capabilities, `${GPU_DOCKERFILE}: NVIDIA_DRIVER_CAPABILITIES`).toEqual([
      'compute',
      'graphics',
      'utility',
    ]);
  });

  it("installs onnxruntime-node's CUDA 12 provider explicitly and checks it is there", () => {
    const runs = instructionsOf(build, 'RUN').map((r) => r.args);
    expect(
      runs.some((r) => r.includes(`sh ${BUILD_SCRIPT} "$SERVICE" cuda12`)),
      GPU_DOCKERFILE,
    ).toBe(true);
    const script = read(BUILD_SCRIPT);
    expect(script).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12 node "\$ort\/script\/install\.js"/);
    expect(script).toContain('libonnxruntime_providers_cuda.so');
    // The installed onnxruntime-node knows that flag value and puts the provider where the script looks.
    const requireFromInference = createRequire(join(repoRoot, 'libs', 'inference', 'package.json'));
    const metadata = requireFromInference('onnxruntime-node/script/install-metadata.js') as {
      requirements: Record<string, string[]>;
      manifests: Record<string, Record<string, unknown>>;
    };
    expect(metadata.requirements['linux/x64']).toContain('cuda12');
    expect(Object.keys(metadata.manifests['linux/x64:cuda12'] ?? {})).toContain(
      './libonnxruntime_providers_cuda.so',
    );
    const installer = readFileSync(
      requireFromInference.resolve('onnxruntime-node/script/install.js'),
      'utf8',
    );
    expect(installer).toContain('ONNXRUNTIME_NODE_INSTALL');
  });

  it('refuses to build without a known service, and runs its entry point', () => {
    const runs = instructionsOf(build, 'RUN').map((r) => r.args);
    const guard = runs.find((r) => r.startsWith('case "${SERVICE:-}" in'));
    expect(guard, 'SERVICE guard').toBeDefined();
    for (const name of ['decoder', 'encoder-vision', 'encoder-audio', 'encoder-text', 'encoder-point']) {
      expect(guard).toContain(name);
    }
    expect(runs.some((r) => r.includes('ln -s "services/$SERVICE/dist/main.js" /out/main.js'))).toBe(true);
    expect(execForm(lastOf(runtime, 'CMD') ?? '')).toEqual(['node', '/app/main.js']);
  });

  // The services the GPU overlay builds from this file, with the arguments it passes.
  const overlay = loadCompose(['docker-compose.yml', 'docker-compose.gpu.yml'], {
    GATEWAY_API_KEYS: 'tenant:key',
    BATCH_WORKER_API_KEY: 'worker',
  });
  const gpuServices = Object.values(overlay.services).filter((s) => s.build?.dockerfile === GPU_DOCKERFILE);

  it('is what the GPU overlay builds', () => {
    expect(gpuServices.map((s) => s.name)).toContain('decoder');
  });

  describe.each(gpuServices.map((s) => [s.name, s.build!.args] as const))(
    'built for %s',
    (name, buildArgs) => {
      const service = APP_SERVICES[name]!;

      it('runs non-root on a read-only root with a /readyz healthcheck, on the service ports', () => {
        const env = checkRuntimeStage(gpu, service, buildArgs);
        expect(env['EXECUTION_PROVIDERS'], 'CUDA first, CPU as the fallback').toBe('cuda,cpu');
        expect(env['MODEL_REPO']).toBe('/models');
      });

      it('installs ffmpeg exactly when the service decodes video or audio', () => {
        const packages = (stageArgs(runtime, buildArgs)['APT_PACKAGES'] ?? '').split(/\s+/);
        expect(packages.includes('ffmpeg'), `${name}: APT_PACKAGES`).toBe(needsFfmpeg(name));
      });
    },
  );
});

describe('the shared build scripts', () => {
  it('install no package scripts, drop dev dependencies and stage the healthcheck', () => {
    const build = read(BUILD_SCRIPT);
    expect(build).toMatch(/^\s*npm ci --ignore-scripts /m);
    expect(build).toMatch(/^\s*npm prune --omit=dev --ignore-scripts /m);
    expect(build).toMatch(/^\s*npx --no-install tsc -b "services\/\$service"$/m);
    const stage = read(STAGE_SCRIPT);
    expect(stage).toContain(`cp ${HEALTHCHECK_SCRIPT} "$out/healthcheck.mjs"`);
    expect(stage).not.toMatch(/\.models/);
  });

  it('probe /readyz with fetch', () => {
    const script = read(HEALTHCHECK_SCRIPT);
    expect(script).toContain('/readyz');
    expect(script).toContain('await fetch(');
  });

  it('.dockerignore keeps models, secrets and local builds out of the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const entry of ['.models', '.env', '.git', '**/node_modules', '**/dist', '**/*.onnx', '**/*.pth']) {
      expect(ignored, '.dockerignore').toContain(entry);
    }
    // The build scripts must stay in the context.
    expect(ignored).toContain('!deploy/docker');
  });
});
