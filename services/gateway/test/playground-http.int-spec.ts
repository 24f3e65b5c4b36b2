// The gateway's HTTP surface for the web playground (issue #8), on a real standalone gateway
// process: the static bundle under `/`, its config endpoint and the REST search it calls.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageBindClient, image, text } from '@imagebind-llm/client';
import { goldenPath, startStandaloneGateway, type ServiceProcess } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const KEY = 'pg-test-key-0123456789abcdef';

describe('playground HTTP surface (standalone gateway process)', () => {
  let gateway: ServiceProcess;
  let site: string;
  const auth = { authorization: `Bearer ${KEY}` };

  beforeAll(async () => {
    site = mkdtempSync(join(tmpdir(), 'playground-site-'));
    mkdirSync(join(site, 'assets'));
    writeFileSync(join(site, 'index.html'), '<!doctype html><title>ImageBind-LLM</title>');
    writeFileSync(join(site, 'assets', 'index-9f8e7d.js'), 'export {};');
    gateway = await startStandaloneGateway(
      {
        GATEWAY_API_KEYS: `web:${KEY}`,
        GATEWAY_PLAYGROUND_DIR: site,
        GATEWAY_MAX_INPUT_BYTES: String(256 * 1024),
      },
      'gateway',
    );
  }, 180_000);

  afterAll(async () => {
    await gateway?.proc.stop('SIGTERM', 20_000);
    rmSync(site, { recursive: true, force: true });
  });

  it('serves the bundle at / without a key, with a strict CSP, and assets as immutable', async () => {
    const index = await fetch(`${gateway.httpBase}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await index.text()).toContain('<title>ImageBind-LLM</title>');
    const csp = index.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(index.headers.get('cache-control')).toBe('no-cache');

    const asset = await fetch(`${gateway.httpBase}/assets/index-9f8e7d.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toContain('immutable');
    const etag = asset.headers.get('etag');
    expect(etag).toMatch(/^"/);
    const again = await fetch(`${gateway.httpBase}/assets/index-9f8e7d.js`, {
      headers: { 'if-none-match': etag! },
    });
    expect(again.status).toBe(304);

    expect((await fetch(`${gateway.httpBase}/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${gateway.httpBase}/assets/..%2f..%2fpackage.json`)).status).toBe(404);
    // The ops endpoints keep working beside the site.
    expect((await fetch(`${gateway.httpBase}/readyz`)).status).toBe(200);
  });

  it('answers the config only with a key, with the limits the gateway enforces', async () => {
    const anonymous = await fetch(`${gateway.httpBase}/v1/playground/config`);
    expect(anonymous.status).toBe(401);
    const response = await fetch(`${gateway.httpBase}/v1/playground/config`, { headers: auth });
    expect(response.status).toBe(200);
    const config = (await response.json()) as {
      model: string;
      limits: { max_input_bytes: number; max_tokens: number };
      formats: { image: string[]; audio: string[]; point_cloud: string[] };
      defaults: { temperature: number; cache: { size: number } };
    };
    expect(config.model).toBe('imagebind-llm');
    expect(config.limits.max_input_bytes).toBe(256 * 1024);
    expect(config.limits.max_tokens).toBe(512);
    expect(config.formats.image).toContain('image/jpeg');
    expect(config.formats.audio).toContain('webm');
    expect(config.formats.point_cloud).toContain('ply');
    expect(config.defaults.cache.size).toBe(10);
  });

  it('searches over REST with the same hits, in the same order, as the gRPC Search', async () => {
    const jpeg = readFileSync(goldenPath('inputs', 'girl.jpg'));
    const response = await fetch(`${gateway.httpBase}/v1/search`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'imagebind-llm',
        inputs: [
          { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${jpeg.toString('base64')}` } },
          { type: 'text', text: 'a girl playing guitar', weight: 0.5 },
        ],
        k: 5,
      }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { data: { id: string; score: number }[] };
    expect(body.data).toHaveLength(5);
    const client = new ImageBindClient({ addresses: [gateway.grpcAddress], apiKey: KEY });
    try {
      const hits = await client.search({
        inputs: [image(jpeg, 1, 'image/jpeg'), text('a girl playing guitar', 0.5)],
        k: 5,
      });
      expect(body.data.map((h) => h.id)).toEqual(hits.map((h) => String(h.id)));
      body.data.forEach((h, i) => expect(h.score).toBeCloseTo(hits[i]!.score, 6));
    } finally {
      client.close();
    }
    for (let i = 1; i < body.data.length; i++) {
      expect(body.data[i - 1]!.score).toBeGreaterThanOrEqual(body.data[i]!.score);
    }
  });

  it('refuses bad search bodies with a message naming the field', async () => {
    const post = async (body: unknown): Promise<{ status: number; message: string }> => {
      const r = await fetch(`${gateway.httpBase}/v1/search`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return {
        status: r.status,
        message: ((await r.json()) as { error: { message: string } }).error.message,
      };
    };
    const notImage = await post({
      model: 'imagebind-llm',
      inputs: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,aGVsbG8gd29ybGQ=' } }],
    });
    expect(notImage.status).toBe(415);
    expect(notImage.message).toMatch(/unsupported image format: expected JPEG, PNG, GIF or WebP/);
    const tooBig = await post({
      model: 'imagebind-llm',
      inputs: [
        {
          type: 'image_url',
          image_url: { url: `data:image/png;base64,${Buffer.alloc(300 * 1024).toString('base64')}` },
        },
      ],
    });
    expect(tooBig.status).toBe(413);
    expect(tooBig.message).toContain('inputs[0].image_url.url');
    // The broken image is the second input; the vision encoder saw it as its first.
    const second = await fetch(`${gateway.httpBase}/v1/search`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'imagebind-llm',
        inputs: [
          { type: 'text', text: 'a dog' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,aGVsbG8gd29ybGQ=' } },
        ],
      }),
    });
    const secondError = ((await second.json()) as { error: { message: string; param: string | null } }).error;
    expect(secondError.message).toMatch(/^inputs\[1\]: /);
    expect(secondError.param).toMatch(/^inputs\[1\]/);
    const noInputs = await post({ model: 'imagebind-llm', inputs: [] });
    expect(noInputs.status).toBe(400);
    expect(noInputs.message).toMatch(/^inputs: /);
  });
});
