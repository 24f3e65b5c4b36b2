// Medium test (issue #16): EmbedMany on a real standalone gateway (golden tiny-a models) through the
// SDK — each request answered as Embed answers it, a bad one failing alone, the per-call limit, and
// admission counting every request of a call against the key's rate limit.
import { readFileSync } from 'node:fs';
import { image, ImageBindClient, ImageBindError, text, type EmbedRequest } from '@imagebind-llm/client';
import { goldenPath, startStandaloneGateway, type ServiceProcess } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const KEY = 'alice-key-0123456789abcdef';

async function rejection(promise: Promise<unknown>): Promise<ImageBindError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ImageBindError)) throw new Error(`expected an ImageBindError, got ${String(error)}`);
  return error;
}

function maxAbsDiff(a: Float32Array | undefined, b: Float32Array | undefined): number {
  if (a === undefined || b === undefined || a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

describe('EmbedMany on a standalone gateway', () => {
  let gateway: ServiceProcess;
  let client: ImageBindClient;

  beforeAll(async () => {
    gateway = await startStandaloneGateway({
      GATEWAY_API_KEYS: `alice:${KEY}`,
      // One token back per minute: the bucket holds what the test spends, to the token.
      GATEWAY_RATE_LIMIT_RPM: '1',
      GATEWAY_RATE_LIMIT_BURST: '12',
      GATEWAY_EMBED_MANY_MAX_REQUESTS: '16',
    });
    client = new ImageBindClient({ addresses: [gateway.grpcAddress], apiKey: KEY });
  }, 180_000);

  afterAll(async () => {
    client?.close();
    await gateway?.proc.stop('SIGKILL');
  });

  // The tests share the key's 12 tokens and run in order: 8 are spent here, 0 by the refusals,
  // then the last 4 by the rate-limit test.
  it("answers each request with Embed's response or Embed's error; a bad one fails alone", async () => {
    const requests: EmbedRequest[] = [
      { inputs: [text('a dog on a beach')], includeFused: true },
      { inputs: [{ ...text('weightless'), weight: 0 }], includeFused: true },
      { inputs: [image(readFileSync(goldenPath('inputs', 'girl.jpg')))], includeFused: true },
      { inputs: [text('a cat'), text('on a mat', 0.5)], includeFused: true },
    ];
    const results = await client.embedMany(requests);
    expect(results.map((r) => r.ok)).toEqual([true, false, true, true]);
    for (const i of [0, 2, 3]) {
      const many = results[i]!;
      const one = await client.embed(requests[i]!);
      if (!many.ok) throw new Error(`request ${i} failed: ${many.error.message}`);
      // The same encoders and fusion; the requests may meet other requests in the encoder
      // batchers, and ORT's kernels may sum a batch in another order: float32 rounding, no more.
      expect(maxAbsDiff(many.result.fused, one.fused), `request ${i}`).toBeLessThan(1e-5);
      expect(many.result.embeddings.map((e) => e.modality)).toEqual(one.embeddings.map((e) => e.modality));
    }
    const single = await rejection(client.embed(requests[1]!));
    const bad = results[1]!;
    if (bad.ok) throw new Error('the weightless request succeeded');
    expect(bad.error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      domainCode: 'INVALID_INPUT',
      field: 'inputs[0].weight',
      details: single.details,
    });
  }, 60_000);

  it('refuses a call over GATEWAY_EMBED_MANY_MAX_REQUESTS or over the burst, spending nothing', async () => {
    const many = (n: number): EmbedRequest[] =>
      Array.from({ length: n }, (_, i) => ({ inputs: [text(`t${i}`)] }));
    const overLimit = await rejection(client.embedMany(many(17)));
    expect(overLimit).toMatchObject({
      code: 'INVALID_ARGUMENT',
      domainCode: 'INVALID_INPUT',
      field: 'requests',
    });
    expect(overLimit.details).toContain('limit of 16 per EmbedMany call (GATEWAY_EMBED_MANY_MAX_REQUESTS)');
    const overBurst = await rejection(client.embedMany(many(13)));
    expect(overBurst).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'requests' });
    expect(overBurst.details).toContain('send at most 12 per call');
  });

  it('counts every request of a call against the rate limit: RESOURCE_EXHAUSTED when they do not fit', async () => {
    const many = (n: number): EmbedRequest[] =>
      Array.from({ length: n }, (_, i) => ({ inputs: [text(`r${i}`)] }));
    // 4 tokens left (8 spent above): 5 requests do not fit and spend nothing; 4 do, and then even
    // one Embed does not.
    const limited = await rejection(client.embedMany(many(5)));
    expect(limited).toMatchObject({ code: 'RESOURCE_EXHAUSTED', domainCode: 'RATE_LIMITED' });
    expect(limited.retryAfterMs).toBeGreaterThan(0);
    const fits = await client.embedMany(many(4));
    expect(fits.every((r) => r.ok)).toBe(true);
    expect(await rejection(client.embed({ inputs: [text('one more')] }))).toMatchObject({
      code: 'RESOURCE_EXHAUSTED',
      domainCode: 'RATE_LIMITED',
    });
  });
});
