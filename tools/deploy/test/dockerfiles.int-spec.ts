// Medium test: the parts of the images that can run without Docker. The HEALTHCHECK script against
// real HTTP listeners, and a service staged by deploy/docker/stage-service.sh (the tree its image
// copies to /app) booted with its Dockerfile's environment until the healthcheck reports it ready.
// Needs the compiled services (`npm run build`, which `npm test` runs first).
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { startProcess, type RunningProcess } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './compose-model';
import { imageStage, readDockerfile, stageEnv } from './dockerfile-parse';

const HEALTHCHECK = join(repoRoot, 'deploy', 'docker', 'healthcheck.mjs');

async function runHealthcheck(
  script: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [script, ...args], {
    env: { PATH: process.env['PATH'], ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stderr };
}

async function listen(handler: (path: string) => number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    res.statusCode = handler(req.url ?? '');
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

describe('healthcheck.mjs', () => {
  it('passes on a 200 from /readyz and fails on a 503, on the port its variable names', async () => {
    const seen: string[] = [];
    let status = 200;
    const { server, port } = await listen((path) => {
      seen.push(path);
      return status;
    });
    try {
      expect(await runHealthcheck(HEALTHCHECK, { HTTP_PORT: String(port) })).toEqual({ code: 0, stderr: '' });
      expect(
        await runHealthcheck(HEALTHCHECK, { GATEWAY_HTTP_PORT: String(port) }, ['GATEWAY_HTTP_PORT']),
      ).toEqual({ code: 0, stderr: '' });
      status = 503;
      const draining = await runHealthcheck(HEALTHCHECK, { HTTP_PORT: String(port) });
      expect(draining.code).toBe(1);
      expect(draining.stderr).toContain('answered 503');
      expect(seen).toEqual(['/readyz', '/readyz', '/readyz']);
    } finally {
      server.close();
    }
  });

  it('fails when nothing listens or the port variable is wrong', async () => {
    const { server, port } = await listen(() => 200);
    await new Promise((resolve) => server.close(resolve));
    expect((await runHealthcheck(HEALTHCHECK, { HTTP_PORT: String(port) })).code).toBe(1);
    const unset = await runHealthcheck(HEALTHCHECK, {});
    expect(unset.code).toBe(1);
    expect(unset.stderr).toContain('HTTP_PORT is undefined');
    // The gateway's image must name its variable: HTTP_PORT alone is not the gateway's port.
    expect((await runHealthcheck(HEALTHCHECK, { GATEWAY_HTTP_PORT: String(port) })).code).toBe(1);
  });
});

describe('a staged service (what an image copies to /app)', () => {
  const SERVICE = 'retriever';
  const scratch = mkdtempSync(join(tmpdir(), 'ibllm-stage-'));
  const app = join(scratch, 'app');
  let service: RunningProcess | undefined;

  beforeAll(() => {
    const staged = spawnSync('sh', ['deploy/docker/stage-service.sh', SERVICE, app], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    expect(staged.status, staged.stderr).toBe(0);
  }, 120_000);

  // Staging copies node_modules (tens of thousands of files): slow on a busy machine.
  afterAll(async () => {
    await service?.stop('SIGTERM', 10_000);
    rmSync(scratch, { recursive: true, force: true });
  }, 120_000);

  it('holds compiled code, the healthcheck and this service only, no sources and no models', () => {
    expect(readdirSync(join(app, 'services'))).toEqual([SERVICE]);
    expect(statSync(join(app, 'healthcheck.mjs')).isFile()).toBe(true);
    const offending: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.name === 'node_modules') continue;
        if (entry.isDirectory()) {
          if (entry.name === 'src' || entry.name === '.models') offending.push(relative(app, path));
          else walk(path);
        } else if (/(?<!\.d)\.ts$|\.onnx$|\.pth$|\.tsbuildinfo$/.test(entry.name)) {
          offending.push(relative(app, path));
        }
      }
    };
    walk(app);
    expect(offending).toEqual([]);
  });

  it("boots from the staged tree with its image's environment and reports ready", async () => {
    const buildArgs = { SERVICE };
    const env = stageEnv(imageStage(readDockerfile('deploy/docker/Dockerfile'), buildArgs), buildArgs);
    service = startProcess(process.execPath, [`services/${SERVICE}/dist/main.js`], {
      cwd: app,
      env: {
        ...env,
        PATH: process.env['PATH'],
        // The container's writable places, here inside the scratch folder; free ports on loopback.
        HOME: scratch,
        RETRIEVER_DATA_DIR: join(scratch, 'data'),
        GRPC_HOST: '127.0.0.1',
        HTTP_HOST: '127.0.0.1',
        GRPC_PORT: '0',
        HTTP_PORT: '0',
      },
    });
    const listening = await service.waitForLine((l) => l['event'] === 'http.listening', 30_000);
    await service.waitForLine((l) => l['event'] === 'service.ready', 30_000);
    const check = await runHealthcheck(join(app, 'healthcheck.mjs'), {
      HTTP_PORT: String(listening['port']),
    });
    expect(check, service.stderr()).toEqual({ code: 0, stderr: '' });
    expect((await service.stop('SIGTERM', 10_000)).code).toBe(0);
    service = undefined;
  });
});

describe('build-service.sh (the build stage), with npm and npx stubbed', () => {
  // The image build runs npm ci (network) and tsc; here stubs record what the script asks of them,
  // and a stand-in onnxruntime-node records how its installer is called, so the script's own steps
  // (arguments, platform pruning, the CUDA check, staging) run for real in a scratch checkout.
  const scratch = mkdtempSync(join(tmpdir(), 'ibllm-build-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  function checkout(name: string, installerWrites: string[]): string {
    const root = join(scratch, name);
    const file = (path: string, text: string): void => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    };
    for (const script of ['build-service.sh', 'stage-service.sh', 'healthcheck.mjs']) {
      mkdirSync(join(root, 'deploy', 'docker'), { recursive: true });
      copyFileSync(join(repoRoot, 'deploy', 'docker', script), join(root, 'deploy', 'docker', script));
    }
    file('package.json', '{"name":"fake","private":true}');
    file('libs/inference/package.json', '{"name":"@imagebind-llm/inference"}');
    file('libs/inference/src/index.ts', '');
    file('libs/inference/dist/index.js', '');
    file('services/decoder/package.json', '{"name":"@imagebind-llm/decoder","main":"./dist/main.js"}');
    file('services/decoder/dist/main.js', '');
    file('services/gateway/dist/main.js', '');
    const ort = 'node_modules/onnxruntime-node';
    file(`${ort}/package.json`, '{"name":"onnxruntime-node","version":"1.30.0"}');
    for (const platform of ['linux/x64', 'linux/arm64', 'darwin/arm64', 'win32/x64']) {
      file(`${ort}/bin/napi-v6/${platform}/onnxruntime_binding.node`, 'x');
    }
    file(
      `${ort}/script/install.js`,
      [
        "const fs = require('node:fs');",
        "const path = require('node:path');",
        "fs.writeFileSync(path.join(__dirname, '..', 'install-called-with'), String(process.env.ONNXRUNTIME_NODE_INSTALL));",
        `for (const lib of ${JSON.stringify(installerWrites)}) {`,
        "  fs.writeFileSync(path.join(__dirname, '..', 'bin', 'napi-v6', 'linux', process.arch, lib), 'so');",
        '}',
      ].join('\n'),
    );
    // The preprocessing addon's build: records that it ran and that the image requires it.
    file(
      'libs/preprocess/native/build.mjs',
      `import { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(join(root, 'calls.log'))}, 'native build IBLLM_NATIVE_REQUIRED=' + process.env.IBLLM_NATIVE_REQUIRED + '\\n');`,
    );
    file('libs/preprocess/native/module.c', '/* a source the staged tree leaves out */');
    file('libs/preprocess/native/build/ibllm_media.node', 'so');
    // npm and npx stubs: append their arguments to a log; a C compiler that finds every header (no
    // apt-get here: that path runs in a bare image).
    const bin = join(root, '.stub-bin');
    mkdirSync(bin);
    for (const tool of ['npm', 'npx']) {
      writeFileSync(join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> "${join(root, 'calls.log')}"\n`, {
        mode: 0o755,
      });
    }
    writeFileSync(join(bin, 'cc'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    return root;
  }

  function build(
    root: string,
    variant?: string,
    service = 'decoder',
  ): { status: number | null; stderr: string } {
    const run = spawnSync('sh', ['deploy/docker/build-service.sh', service, ...(variant ? [variant] : [])], {
      cwd: root,
      encoding: 'utf8',
      env: {
        PATH: `${join(root, '.stub-bin')}:${dirname(process.execPath)}:/usr/bin:/bin`,
        OUT: join(root, 'out'),
      },
    });
    return { status: run.status, stderr: run.stderr };
  }

  it('installs without scripts, builds the one service, prunes, keeps one platform and stages', () => {
    const root = checkout('cpu', []);
    const run = build(root);
    expect(run.status, run.stderr).toBe(0);
    expect(readFileSync(join(root, 'calls.log'), 'utf8').trim().split('\n')).toEqual([
      'native build IBLLM_NATIVE_REQUIRED=1',
      'npm ci --ignore-scripts --no-audit --no-fund',
      'npx --no-install tsc -b services/decoder',
      'npm prune --omit=dev --ignore-scripts --no-audit --no-fund',
    ]);
    const bin = join(root, 'out', 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6');
    expect(readdirSync(join(bin, 'linux'))).toEqual([process.arch]);
    expect(readdirSync(bin).filter((os) => readdirSync(join(bin, os)).length > 0)).toEqual(['linux']);
    expect(existsSync(join(root, 'node_modules', 'onnxruntime-node', 'install-called-with'))).toBe(false);
    expect(readdirSync(join(root, 'out', 'services'))).toEqual(['decoder']);
    expect(existsSync(join(root, 'out', 'libs', 'inference', 'src'))).toBe(false);
    expect(existsSync(join(root, 'out', 'libs', 'inference', 'dist', 'index.js'))).toBe(true);
    expect(existsSync(join(root, 'out', 'healthcheck.mjs'))).toBe(true);
    // The addon's built module is staged, its C sources are not.
    expect(existsSync(join(root, 'out', 'libs', 'preprocess', 'native', 'build', 'ibllm_media.node'))).toBe(
      true,
    );
    expect(existsSync(join(root, 'out', 'libs', 'preprocess', 'native', 'module.c'))).toBe(false);
  });

  it('--workspace installs, compiles everything and prunes once; the service step then only stages', () => {
    const root = checkout('workspace', []);
    const prepared = build(root, undefined, '--workspace');
    expect(prepared.status, prepared.stderr).toBe(0);
    const workspaceCalls = [
      'native build IBLLM_NATIVE_REQUIRED=1',
      'npm ci --ignore-scripts --no-audit --no-fund',
      'npx --no-install tsc -b tsconfig.build.json',
      'npx --no-install vite build services/gateway/web --logLevel warn',
      'npm prune --omit=dev --ignore-scripts --no-audit --no-fund',
    ];
    expect(readFileSync(join(root, 'calls.log'), 'utf8').trim().split('\n')).toEqual(workspaceCalls);
    expect(existsSync(join(root, 'out')), '--workspace stages nothing').toBe(false);
    const bin = join(root, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6');
    expect(readdirSync(bin).filter((os) => readdirSync(join(bin, os)).length > 0)).toEqual(['linux']);

    const run = build(root);
    expect(run.status, run.stderr).toBe(0);
    expect(readFileSync(join(root, 'calls.log'), 'utf8').trim().split('\n')).toEqual(workspaceCalls);
    expect(readdirSync(join(root, 'out', 'services'))).toEqual(['decoder']);
    expect(existsSync(join(root, 'out', 'healthcheck.mjs'))).toBe(true);
  });

  it("cuda12 runs onnxruntime-node's installer for cuda12 and checks the provider arrived", () => {
    const ok = checkout('cuda-ok', [
      'libonnxruntime_providers_cuda.so',
      'libonnxruntime_providers_shared.so',
    ]);
    const run = build(ok, 'cuda12');
    expect(run.status, run.stderr).toBe(0);
    const ort = join(ok, 'out', 'node_modules', 'onnxruntime-node');
    expect(readFileSync(join(ort, 'install-called-with'), 'utf8')).toBe('cuda12');
    expect(
      existsSync(join(ort, 'bin', 'napi-v6', 'linux', process.arch, 'libonnxruntime_providers_cuda.so')),
    ).toBe(true);

    const broken = checkout('cuda-broken', ['libonnxruntime_providers_shared.so']);
    const failed = build(broken, 'cuda12');
    expect(failed.status).not.toBe(0);
    expect(failed.stderr).toContain('did not install libonnxruntime_providers_cuda.so');
  });

  it('refuses an unknown service or variant', () => {
    const root = checkout('bad', []);
    expect(build(root, 'rocm').stderr).toContain('the variant must be cpu or cuda12');
    const run = spawnSync('sh', ['deploy/docker/build-service.sh', 'nope'], { cwd: root, encoding: 'utf8' });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain("there is no service 'nope'");
  });
});
