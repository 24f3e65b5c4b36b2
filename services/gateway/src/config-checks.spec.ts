import { parseEnv } from '@imagebind-llm/config';
import { describe, expect, it } from 'vitest';
import { gatewayConfigProblems } from './config-checks';
import { gatewayEnvSchema } from './env.schema';

const targets = {
  GATEWAY_RETRIEVER_TARGET: '127.0.0.1:1',
  GATEWAY_BIND_TARGET: '127.0.0.1:1',
  GATEWAY_DECODER_TARGET: '127.0.0.1:1',
};

function problems(vars: Record<string, string>): string[] {
  return gatewayConfigProblems(parseEnv('gateway', gatewayEnvSchema, { ...targets, ...vars }));
}

describe('gatewayConfigProblems', () => {
  it('accepts a sound configuration', () => {
    expect(
      problems({
        GATEWAY_FETCH_ALLOWED_HOSTS: 'example.com,*.cdn.example.org',
        GATEWAY_API_KEYS: 'alice:alice-key-0123456789abcdef',
        GATEWAY_RATE_LIMIT_OVERRIDES: 'alice:60:10',
        GATEWAY_REDIS_URL: 'redis://127.0.0.1:6379/0',
        GATEWAY_HTTP_HOST: '0.0.0.0',
      }),
    ).toEqual([]);
  });

  it.each([
    [
      { GATEWAY_FETCH_ALLOWED_HOSTS: 'localhost,127.0.0.1' },
      [
        'GATEWAY_FETCH_ALLOWED_HOSTS: allowedHosts[0] ("localhost") is a loopback name, which is never fetched',
        'GATEWAY_FETCH_ALLOWED_HOSTS: allowedHosts[1] ("127.0.0.1") is a private, loopback or reserved address, which is never fetched',
      ],
    ],
    [{ GATEWAY_FETCH_ALLOWED_HOSTS: '10.1.2.3' }, [/allowedHosts\[0\] \("10\.1\.2\.3"\) is a private/]],
    [{ GATEWAY_FETCH_ALLOWED_HOSTS: 'https://example.com/x' }, [/allowedHosts\[0\].*must be a bare/]],
    [
      { GATEWAY_FETCH_ALLOWED_HOSTS: 'exa mple.com' },
      [/allowedHosts\[0\] \("exa mple\.com"\) is not a valid host name/],
    ],
    [{ GATEWAY_FETCH_ALLOWED_HOSTS: '*.' }, [/allowedHosts\[0\].*must be a host name/]],
    [{ GATEWAY_API_KEYS: 'no-colon' }, [/^GATEWAY_API_KEYS entry 1: must look like tenant:key/]],
    [{ GATEWAY_RATE_LIMIT_OVERRIDES: 'a:0' }, [/^GATEWAY_RATE_LIMIT_OVERRIDES: "a:0": requests per minute/]],
    [
      { GATEWAY_REDIS_URL: 'http://127.0.0.1:6379' },
      [/^GATEWAY_REDIS_URL: Redis URL must start with redis:\/\//],
    ],
    [
      { GATEWAY_BATCH_OBJECT_STORE_ENDPOINT: 'http://s3.example.com' },
      [
        /^GATEWAY_BATCH_OBJECT_STORE_ENDPOINT: objectStore\.endpoint must use https/,
        /objectStore\.buckets must list/,
      ],
    ],
    [
      { GATEWAY_BATCH_OBJECT_STORE_BUCKETS: 'media' },
      [/BUCKETS is set without GATEWAY_BATCH_OBJECT_STORE_ENDPOINT/],
    ],
    [{ GATEWAY_BATCH_FILE_ROOT: 'relative/dir' }, [/^GATEWAY_BATCH_FILE_ROOT: fileRoot must be an absolute/]],
    [{ GATEWAY_HTTP_HOST: '127.0.0.2' }, [/^GATEWAY_HTTP_HOST is "127\.0\.0\.2" without API keys/]],
    [
      { GATEWAY_PLAYGROUND_DIR: '/nonexistent/playground' },
      [/GATEWAY_PLAYGROUND_DIR is "\/nonexistent\/playground", which does not exist/],
    ],
    [{ GATEWAY_MODE: 'standalone' }, [/^GATEWAY_MODEL_REPO must be set in standalone mode/]],
    [
      { GATEWAY_MODE: 'standalone', GATEWAY_MODEL_REPO: '/nonexistent/repo' },
      [/GATEWAY_MODEL_REPO is "\/nonexistent\/repo", which does not exist/],
    ],
  ])('refuses %j, naming the variable', (vars, expected) => {
    const found = problems(vars);
    expect(found).toHaveLength(expected.length);
    expected.forEach((want, i) => {
      if (typeof want === 'string') expect(found[i]).toBe(want);
      else expect(found[i]).toMatch(want);
    });
  });

  it('accepts host:port lists and scheme targets, and names a malformed address', () => {
    expect(
      problems({
        GATEWAY_DECODER_TARGET: '10.0.0.1:50051, decoder-1.svc:50051,[::1]:7',
        GATEWAY_BIND_TARGET: 'dns:///bind.default.svc:50051',
        GATEWAY_ENCODER_TEXT_TARGET: 'unix:/tmp/encoder.sock',
      }),
    ).toEqual([]);
    expect(problems({ GATEWAY_DECODER_TARGET: 'decoder' })).toEqual([
      'GATEWAY_DECODER_TARGET: "decoder" is not host:port (port 1..65535); write host:port[,host:port] or dns:///name:port',
    ]);
    expect(problems({ GATEWAY_BIND_TARGET: 'bind:99999' })[0]).toMatch(
      /^GATEWAY_BIND_TARGET: "bind:99999" is not host:port/,
    );
    expect(problems({ GATEWAY_RETRIEVER_TARGET: 'a:1,,b:2,' })).toEqual([]);
    expect(problems({ GATEWAY_RETRIEVER_TARGET: ',' })).toEqual([
      'GATEWAY_RETRIEVER_TARGET: names no address; write host:port[,host:port] or dns:///name:port',
    ]);
  });

  it('names every missing target of distributed mode', () => {
    expect(gatewayConfigProblems(parseEnv('gateway', gatewayEnvSchema, {}))).toEqual([
      'distributed mode needs GATEWAY_RETRIEVER_TARGET, GATEWAY_BIND_TARGET, GATEWAY_DECODER_TARGET (or run GATEWAY_MODE=standalone with GATEWAY_MODEL_REPO)',
    ]);
  });
});
