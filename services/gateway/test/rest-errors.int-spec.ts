// The REST surface's errors as a client sees them (issue #17 item 5): every refusal — from the
// parsers, the router, the body limit or the API's own checks — comes in OpenAI's shape
// `{"error": {"message", "type", "param", "code"}}` with the documented status, and `param`, when
// set, is the REST path of the field (e.g. `messages[0].content[1].image_url`), never an RPC name.
import { startStandaloneGateway, type ServiceProcess } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MAX_BODY = 1024 * 1024;

interface Case {
  readonly name: string;
  readonly method?: string;
  readonly path: string;
  readonly body?: string;
  readonly headers?: Record<string, string>;
  readonly status: number;
  readonly code: string;
  /** Where the message must point; param when the error is about one field. */
  readonly param?: string | null;
}

const json = { 'content-type': 'application/json' };
const chat = (extra: Record<string, unknown>): string =>
  JSON.stringify({
    model: 'imagebind-llm',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Describe it.' }] }],
    ...extra,
  });
const userParts = (parts: unknown[]): string =>
  JSON.stringify({ model: 'imagebind-llm', messages: [{ role: 'user', content: parts }] });
const instruction = { type: 'text', text: 'Describe it.' };
const dog = { type: 'text', text: 'A dog.', imagebind_modality: true };
/** A valid chat body (instruction + one ImageBind text input) with `extra` top-level fields. */
const withTop = (extra: Record<string, unknown>): string =>
  JSON.stringify({ ...(JSON.parse(userParts([instruction, dog])) as object), ...extra });

/** A JPEG start marker followed by bytes that are not a JPEG stream. */
const GARBAGE_JPEG = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(400, 0x5a)]).toString(
  'base64',
);

const CASES: Case[] = [
  {
    name: 'malformed JSON',
    path: '/v1/chat/completions',
    body: '{bad',
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: null,
  },
  {
    name: 'truncated JSON',
    path: '/v1/embeddings',
    body: '{"input": [',
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: null,
  },
  {
    name: 'a body over the limit (declared)',
    path: '/v1/chat/completions',
    body: 'x'.repeat(MAX_BODY + 10),
    headers: json,
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    param: null,
  },
  {
    name: 'text/plain body',
    path: '/v1/chat/completions',
    body: chat({}),
    headers: { 'content-type': 'text/plain' },
    status: 415,
    code: 'UNSUPPORTED_MEDIA',
    param: null,
  },
  {
    name: 'form body',
    path: '/v1/embeddings',
    body: 'a=1',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    status: 415,
    code: 'UNSUPPORTED_MEDIA',
    param: null,
  },
  { name: 'unknown route', method: 'GET', path: '/v2/chat', status: 404, code: 'NOT_FOUND', param: null },
  {
    name: 'unknown route under /v1',
    path: '/v1/completions',
    body: '{}',
    headers: json,
    status: 404,
    code: 'NOT_FOUND',
    param: null,
  },
  {
    name: 'GET on a POST route',
    method: 'GET',
    path: '/v1/chat/completions',
    status: 404,
    code: 'NOT_FOUND',
    param: null,
  },
  {
    name: 'unknown model (chat)',
    path: '/v1/chat/completions',
    body: chat({ model: 'gpt-4' }),
    headers: json,
    status: 404,
    code: 'NOT_FOUND',
    param: 'model',
  },
  {
    name: 'unknown model (models/:id)',
    method: 'GET',
    path: '/v1/models/gpt-4',
    status: 404,
    code: 'NOT_FOUND',
  },
  {
    name: 'a JSON array body',
    path: '/v1/chat/completions',
    body: '[]',
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
  },
  {
    name: 'no messages',
    path: '/v1/chat/completions',
    body: JSON.stringify({ model: 'imagebind-llm' }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'messages',
  },
  {
    name: 'empty messages',
    path: '/v1/chat/completions',
    body: chat({ messages: [] }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'messages',
  },
  {
    name: 'unknown top-level key',
    path: '/v1/chat/completions',
    body: chat({ tempreture: 1 }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
  },
  {
    name: 'temperature out of range',
    path: '/v1/chat/completions',
    body: withTop({ temperature: 99 }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'temperature',
  },
  {
    name: 'top_p out of range',
    path: '/v1/chat/completions',
    body: chat({ top_p: 2 }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'top_p',
  },
  {
    name: 'max_tokens zero',
    path: '/v1/chat/completions',
    body: chat({ max_tokens: 0 }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'max_tokens',
  },
  {
    name: 'max_tokens a string',
    path: '/v1/chat/completions',
    body: chat({ max_tokens: '12' }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'max_tokens',
  },
  {
    name: 'n = 2',
    path: '/v1/chat/completions',
    body: chat({ n: 2 }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'n',
  },
  {
    name: 'seed negative',
    path: '/v1/chat/completions',
    body: chat({ seed: -1 }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'seed',
  },
  {
    name: 'stream not a boolean',
    path: '/v1/chat/completions',
    body: chat({ stream: 'yes' }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'stream',
  },
  {
    name: 'no input part',
    path: '/v1/chat/completions',
    body: chat({}),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
  },
  {
    name: 'unknown part type',
    path: '/v1/chat/completions',
    body: userParts([instruction, { type: 'image_file', file: 'x' }]),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'messages[0].content[1].type',
  },
  {
    name: 'weight out of range',
    path: '/v1/chat/completions',
    body: userParts([instruction, { ...dog, weight: 0 }]),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'messages[0].content[1].weight',
  },
  {
    // Refused inside the vision encoder (it does not decode), reported at the content part.
    name: 'an image that does not decode',
    path: '/v1/chat/completions',
    body: userParts([
      instruction,
      { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${GARBAGE_JPEG}` } },
    ]),
    headers: json,
    status: 415,
    code: 'UNSUPPORTED_MEDIA',
    param: 'messages[0].content[1]',
  },
  {
    name: 'embeddings: audio that does not decode',
    path: '/v1/embeddings',
    body: JSON.stringify({
      model: 'imagebind-llm',
      input: 'a dog',
      imagebind_inputs: [{ type: 'input_audio', input_audio: { data: GARBAGE_JPEG, format: 'wav' } }],
    }),
    headers: json,
    status: 415,
    code: 'UNSUPPORTED_MEDIA',
    param: 'imagebind_inputs[0]',
  },
  {
    // The client's string is repeated back clipped (the loop checks ≤ 600 characters).
    name: 'a 100 kB model id',
    path: '/v1/chat/completions',
    body: JSON.stringify({ ...(JSON.parse(withTop({})) as object), model: 'm'.repeat(100_000) }),
    headers: json,
    status: 404,
    code: 'NOT_FOUND',
    param: 'model',
  },
  {
    name: 'image_url not a URL',
    path: '/v1/chat/completions',
    body: userParts([instruction, { type: 'image_url', image_url: { url: 'not a url' } }]),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
  },
  {
    name: 'image_url to a private host',
    path: '/v1/chat/completions',
    body: userParts([instruction, { type: 'image_url', image_url: { url: 'https://10.0.0.7/x.jpg' } }]),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
  },
  {
    name: 'data URL that is not base64',
    path: '/v1/chat/completions',
    body: userParts([instruction, { type: 'image_url', image_url: { url: 'data:image/png;base64,@@@@' } }]),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
  },
  {
    name: 'undecodable image bytes',
    path: '/v1/chat/completions',
    body: userParts([
      instruction,
      {
        type: 'image_url',
        image_url: { url: `data:image/png;base64,${Buffer.from('not an image at all').toString('base64')}` },
      },
    ]),
    headers: json,
    status: 415,
    code: 'UNSUPPORTED_MEDIA',
  },
  {
    name: 'input_audio without data',
    path: '/v1/chat/completions',
    body: userParts([instruction, { type: 'input_audio', input_audio: { format: 'wav' } }]),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
  },
  {
    name: 'imagebind.cache.size out of range',
    path: '/v1/chat/completions',
    body: withTop({ imagebind: { cache: { size: 0 } } }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'imagebind.cache.size',
  },
  {
    name: 'imagebind unknown key',
    path: '/v1/chat/completions',
    body: withTop({ imagebind: { cahce: {} } }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
  },
  {
    name: 'embeddings without input',
    path: '/v1/embeddings',
    body: JSON.stringify({ model: 'imagebind-llm' }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
  },
  {
    name: 'embeddings input a number',
    path: '/v1/embeddings',
    body: JSON.stringify({ model: 'imagebind-llm', input: 5 }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'input',
  },
  {
    name: 'embeddings bad encoding_format',
    path: '/v1/embeddings',
    body: JSON.stringify({ model: 'imagebind-llm', input: 'a dog', encoding_format: 'hex' }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'encoding_format',
  },
  {
    name: 'embeddings unknown model',
    path: '/v1/embeddings',
    body: JSON.stringify({ model: 'text-embedding-3', input: 'a dog' }),
    headers: json,
    status: 404,
    code: 'NOT_FOUND',
    param: 'model',
  },
  {
    name: 'embeddings dimensions not 1024',
    path: '/v1/embeddings',
    body: JSON.stringify({ model: 'imagebind-llm', input: 'a dog', dimensions: 12 }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
    param: 'dimensions',
  },
  {
    name: 'search without inputs',
    path: '/v1/search',
    body: JSON.stringify({ k: 3 }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
  },
  {
    name: 'search k out of range',
    path: '/v1/search',
    body: JSON.stringify({ input: 'a dog', k: 0 }),
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
  },
  {
    name: 'search a JSON string body',
    path: '/v1/search',
    body: '"a dog"',
    headers: json,
    status: 400,
    code: 'INVALID_INPUT',
  },
  {
    name: 'a prompt over the context window',
    path: '/v1/chat/completions',
    body: userParts([{ type: 'text', text: 'word '.repeat(5000) }, dog]),
    headers: json,
    status: 400,
    code: 'CONTEXT_OVERFLOW',
  },
  {
    name: 'batch API without Redis',
    path: '/v1/batches',
    body: '{}',
    headers: json,
    status: 501,
    code: 'NOT_IMPLEMENTED',
  },
];

/** A REST path: names and [indices], dot-separated (e.g. messages[0].content[1].image_url.url). */
const REST_PATH = /^[a-z_]+(\[\d+\])*(\.[a-z_]+(\[\d+\])*)*$/;
/** Names of the gRPC contract or of internal code that must not reach a REST client. */
const INTERNAL_NAMES = /prompt_token_ids|inputs\[\d+\]\.content|\/tmp\/|Tokenize|GenerateRequest|\bat \//;

describe('REST errors in OpenAI shape (standalone gateway)', () => {
  let gateway: ServiceProcess;

  beforeAll(async () => {
    gateway = await startStandaloneGateway({ GATEWAY_MAX_BODY_BYTES: String(MAX_BODY) }, 'gateway');
  }, 180_000);

  afterAll(async () => {
    await gateway?.proc.stop('SIGTERM', 20_000);
  });

  it('has a table of at least 40 bad requests', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const response = await fetch(`${gateway.httpBase}${c.path}`, {
      method: c.method ?? 'POST',
      headers: c.headers ?? {},
      ...(c.body === undefined ? {} : { body: c.body }),
    });
    const text = await response.text();
    expect(response.headers.get('x-powered-by')).toBeNull();
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const body = JSON.parse(text) as { error?: Record<string, unknown> };
    expect(Object.keys(body)).toEqual(['error']);
    const error = body.error!;
    expect(Object.keys(error).sort()).toEqual(['code', 'message', 'param', 'type']);
    expect({ status: response.status, code: error['code'] }).toEqual({ status: c.status, code: c.code });
    expect(typeof error['message']).toBe('string');
    expect((error['message'] as string).length).toBeGreaterThan(10);
    expect((error['message'] as string).length).toBeLessThanOrEqual(600);
    expect(error['message']).not.toMatch(INTERNAL_NAMES);
    expect(typeof error['type']).toBe('string');
    const param = error['param'];
    if (param !== null) {
      expect(typeof param).toBe('string');
      expect(param).toMatch(REST_PATH);
    }
    if (c.param !== undefined) expect(param).toBe(c.param);
  });
});
