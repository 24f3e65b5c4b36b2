import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@imagebind-llm/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSource, isTransientSourceError, readSource, type MediaSourcePolicy } from './index';
import { domainRejectionOf } from '@imagebind-llm/testing';

const FIELD = 'manifest.items[7].uri';

describe('readSource from files under the root (real filesystem)', () => {
  let base: string;
  let root: string;
  let policy: MediaSourcePolicy;

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'media-source-'));
    root = join(base, 'root');
    await mkdir(join(root, 'clips'), { recursive: true });
    await writeFile(join(base, 'secret.txt'), 'outside the root');
    await writeFile(join(root, 'clips', 'a.bin'), new Uint8Array([1, 2, 3, 4]));
    await writeFile(join(root, 'big.bin'), new Uint8Array(65));
    await writeFile(join(root, 'exact.bin'), new Uint8Array(64));
    await writeFile(join(root, 'empty.bin'), new Uint8Array(0));
    await symlink(join(base, 'secret.txt'), join(root, 'escape.txt'));
    await symlink(base, join(root, 'escape-dir'));
    await symlink(join(root, 'clips', 'a.bin'), join(root, 'inside-link.bin'));
    await symlink(join(root, 'loop-b'), join(root, 'loop-a'));
    await symlink(join(root, 'loop-a'), join(root, 'loop-b'));
    policy = { allowedHosts: [], fileRoot: root, maxBytes: 64, timeoutMs: 1000 };
  });

  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('reads a file by relative path, absolute path and file URI', async () => {
    for (const uri of ['clips/a.bin', join(root, 'clips/a.bin'), `file://${root}/clips/a.bin`]) {
      expect(Array.from(await readSource(uri, policy, FIELD)), uri).toEqual([1, 2, 3, 4]);
    }
  });

  it('follows a symbolic link that stays inside the root', async () => {
    expect(Array.from(await readSource('inside-link.bin', policy, FIELD))).toEqual([1, 2, 3, 4]);
  });

  it('refuses a symbolic link that leads outside the root, at read time', async () => {
    // checkSource cannot see links (no I/O): the lexical path is inside the root.
    expect(checkSource('escape.txt', policy, FIELD).kind).toBe('file');
    for (const uri of ['escape.txt', 'escape-dir/secret.txt']) {
      const error = await domainRejectionOf(readSource(uri, policy, FIELD));
      expect(error.code, uri).toBe(ErrorCode.InvalidInput);
      expect(error.details.field).toBe(FIELD);
      expect(error.message).toMatch(/outside the media root/);
      expect(error.message).not.toContain(base); // the server's layout is not disclosed
    }
  });

  it('refuses traversal and outside paths before touching the disk', async () => {
    for (const uri of [
      '../secret.txt',
      'clips/../../secret.txt',
      '%2e%2e/secret.txt',
      '..\\secret.txt',
      join(base, 'secret.txt'),
      `file://${root}/../secret.txt`,
      'file:///etc/passwd',
      '/etc/passwd',
    ]) {
      const error = await domainRejectionOf(readSource(uri, policy, FIELD));
      expect(error.code, uri).toBe(ErrorCode.InvalidInput);
    }
  });

  it('checks the size with stat before reading, and accepts exactly maxBytes', async () => {
    const error = await domainRejectionOf(readSource('big.bin', policy, FIELD));
    expect(error.code).toBe(ErrorCode.PayloadTooLarge);
    expect(error.message).toMatch(/"big\.bin" is 65 bytes; the limit is 64/);
    expect((await readSource('exact.bin', policy, FIELD)).byteLength).toBe(64);
  });

  it('answers NOT_FOUND for a missing file or directory', async () => {
    for (const uri of ['clips/missing.bin', 'nope/a.bin', 'clips/a.bin/x']) {
      const error = await domainRejectionOf(readSource(uri, policy, FIELD));
      expect(error.code, uri).toBe(ErrorCode.NotFound);
      expect(error.details.field).toBe(FIELD);
    }
  });

  it('refuses directories, empty files and link loops', async () => {
    expect((await domainRejectionOf(readSource('clips', policy, FIELD))).message).toMatch(
      /not a regular file/,
    );
    expect((await domainRejectionOf(readSource('empty.bin', policy, FIELD))).message).toMatch(/is empty/);
    expect((await domainRejectionOf(readSource('loop-a', policy, FIELD))).message).toMatch(
      /symbolic link loop/,
    );
  });

  it('reports a missing root as transient (a volume that is not mounted yet)', async () => {
    const gone = { ...policy, fileRoot: join(base, 'not-mounted') };
    const error = await domainRejectionOf(readSource('a.bin', gone, FIELD));
    expect(isTransientSourceError(error)).toBe(true);
  });
});

describe('readSource over a real HTTP stack (loopback server behind an allow-listed name)', () => {
  let server: Server;
  let requests = 0;
  let origin: string;
  let policy: MediaSourcePolicy;

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests += 1;
      switch (req.url ?? '') {
        case '/ok':
          res.end(Buffer.from('hello media'));
          return;
        case '/redirect':
          res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
          return;
        case '/chunked-big': {
          // No Content-Length: only the streaming cap can stop this.
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          const timer = setInterval(() => res.write(Buffer.alloc(1024)), 1);
          res.on('close', () => clearInterval(timer));
          return;
        }
        case '/slow':
          setTimeout(() => res.end('late'), 2000).unref();
          return;
        default:
          res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // Real loopback is refused by policy, so the test maps the allow-listed public name onto the
    // local server below the policy: the resolver says "public", the fetch goes to loopback.
    const toLocal: typeof fetch = (input, init) =>
      fetch(
        (input instanceof Request ? input.url : input.toString()).replace(
          'https://media.example.com',
          origin,
        ),
        init,
      );
    policy = {
      allowedHosts: ['media.example.com'],
      maxBytes: 4096,
      timeoutMs: 300,
      resolve: () => Promise.resolve(['93.184.216.34']),
      fetchImpl: toLocal,
    };
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('fetches a body', async () => {
    expect(new TextDecoder().decode(await readSource('https://media.example.com/ok', policy, FIELD))).toBe(
      'hello media',
    );
  });

  it('refuses a real redirect instead of following it', async () => {
    const error = await domainRejectionOf(readSource('https://media.example.com/redirect', policy, FIELD));
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(error.message).toMatch(/redirect, which is not followed/);
  });

  it('cuts off an endless chunked body at the cap', async () => {
    const error = await domainRejectionOf(readSource('https://media.example.com/chunked-big', policy, FIELD));
    expect(error.code).toBe(ErrorCode.PayloadTooLarge);
  });

  it('times out a slow server as transient', async () => {
    const error = await domainRejectionOf(readSource('https://media.example.com/slow', policy, FIELD));
    expect(error.code).toBe(ErrorCode.DependencyUnavailable);
    expect(isTransientSourceError(error)).toBe(true);
  });

  it('answers NOT_FOUND for a 404', async () => {
    expect(
      (await domainRejectionOf(readSource('https://media.example.com/missing', policy, FIELD))).code,
    ).toBe(ErrorCode.NotFound);
  });

  it('never reaches the loopback server when a name resolves to it or it is named directly', async () => {
    const before = requests;
    const rebound = { ...policy, resolve: () => Promise.resolve(['93.184.216.34', '127.0.0.1']) };
    const error = await domainRejectionOf(readSource('https://media.example.com/ok', rebound, FIELD));
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(error.message).toMatch(/resolves to 127\.0\.0\.1/);
    const port = (server.address() as AddressInfo).port;
    const direct = { ...policy, resolve: undefined, fetchImpl: undefined };
    expect((await domainRejectionOf(readSource(`https://127.0.0.1:${port}/ok`, direct, FIELD))).code).toBe(
      ErrorCode.InvalidInput,
    );
    expect(requests).toBe(before);
  });
});
