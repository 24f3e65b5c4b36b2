import { status, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import { DomainError } from '@imagebind-llm/errors';
// The platform's own status mapping, so these tests read what a real gateway writes.
import { toGrpcStatus } from '@imagebind-llm/grpc-kit';
import { commonV1, type gatewayV1 } from '@imagebind-llm/proto';
import { describe, expect, it } from 'vitest';
import { image, text } from './index';
import { failStream, finalToken, float32Tensor, metadataValue, token } from './testing/fake-gateway';
import { fakeGatewaySetup, imageBindRejection } from './testing/client-setup';

type GenerateCall = ServerWritableStream<gatewayV1.GenerateRequest, gatewayV1.GenerateResponse>;

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
const REQUEST = { inputs: [image(PNG), text('a cat')], instruction: 'What is this?' };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const setup = fakeGatewaySetup();
const rejection = imageBindRejection;

/** Streams `first`, then keeps the call open until the client goes away. */
function openAfter(first: string): (call: GenerateCall) => void {
  return (call) => {
    call.write(token(first));
  };
}

describe('ImageBindClient.generate', () => {
  it('yields the chunks in order, and text() concatenates them', async () => {
    const { fake, client } = await setup({
      generate: (call: GenerateCall) => {
        call.write(token('A cat'));
        call.write(token(' on a'));
        call.write(finalToken(' mat.'));
        call.end();
      },
    });

    const chunks = [];
    for await (const chunk of client.generate(REQUEST)) chunks.push(chunk);
    expect(chunks.map((c) => c.text)).toEqual(['A cat', ' on a', ' mat.']);
    expect(chunks.map((c) => c.finishReason)).toEqual([undefined, undefined, 'stop']);
    expect(chunks[2]?.usage?.completionTokens).toBe(3);

    expect(await client.generate(REQUEST).text()).toBe('A cat on a mat.');
    const request = fake.callsTo('generate')[0]!.request as gatewayV1.GenerateRequest;
    expect(request.instruction).toBe('What is this?');
    expect(request.inputs.map((i) => i.modality)).toEqual([
      commonV1.Modality.MODALITY_IMAGE,
      commonV1.Modality.MODALITY_TEXT,
    ]);
  });

  it('collect() gathers token ids, finish reason and usage', async () => {
    const { fake, client } = await setup({
      generate: (call: GenerateCall) => {
        call.write(token('Hi', [5, 6]));
        call.write(finalToken('!'));
        call.end();
      },
    });
    const result = await client
      .generate({ ...REQUEST, maxNewTokens: 16, sampling: { temperature: 0 } })
      .collect();
    expect(result).toMatchObject({ text: 'Hi!', tokenIds: [5, 6, 99], finishReason: 'stop' });
    expect(result.usage?.seed).toBe(7);
    const request = fake.callsTo('generate')[0]!.request as gatewayV1.GenerateRequest;
    expect(request.stopping?.maxNewTokens).toBe(16);
    expect(request.sampling?.temperature).toBe(0);
  });

  it('cancels the server call when the consumer breaks out of the loop', async () => {
    const { fake, client } = await setup({ generate: openAfter('first') });
    for await (const chunk of client.generate(REQUEST)) {
      expect(chunk.text).toBe('first');
      break;
    }
    const call = fake.callsTo('generate')[0]!;
    await call.cancelled;
    expect(call.wasCancelled()).toBe(true);
  });

  it('cancels the server call when the AbortSignal aborts, failing with CANCELLED', async () => {
    const { fake, client } = await setup({ generate: openAfter('first') });
    const controller = new AbortController();
    const reason = new Error('user left');
    const seen: string[] = [];
    const error = await rejection(
      (async () => {
        for await (const chunk of client.generate(REQUEST, { signal: controller.signal })) {
          seen.push(chunk.text);
          controller.abort(reason);
        }
      })(),
    );
    expect(seen).toEqual(['first']);
    expect(error.code).toBe('CANCELLED');
    expect(error.grpcCode).toBe(status.CANCELLED);
    expect(error.cause).toBe(reason);
    await fake.callsTo('generate')[0]!.cancelled;
  });

  it('cancel() on the stream cancels the server call', async () => {
    const { fake, client } = await setup({ generate: openAfter('first') });
    const stream = client.generate(REQUEST);
    const error = await rejection(
      (async () => {
        for await (const _ of stream) stream.cancel();
      })(),
    );
    expect(error.code).toBe('CANCELLED');
    await fake.callsTo('generate')[0]!.cancelled;
  });

  it('does not call the server when the signal is already aborted', async () => {
    const { fake, client } = await setup({ generate: openAfter('first') });
    const error = await rejection(client.generate(REQUEST, { signal: AbortSignal.abort() }).text());
    expect(error.code).toBe('CANCELLED');
    expect(fake.calls).toHaveLength(0);
  });

  it('maps a passed deadline to DEADLINE_EXCEEDED', async () => {
    const { fake, client } = await setup({ generate: openAfter('first') });
    const seen: string[] = [];
    // The server writes 'first' at once and then never ends the stream, so only the deadline ends
    // it. The deadline must still leave room for the first chunk to arrive (a new connection on a
    // loaded 2-core machine took over 200 ms): 1.5 s does, and costs the test only its length.
    const error = await rejection(
      (async () => {
        for await (const chunk of client.generate(REQUEST, { timeoutMs: 1_500 })) seen.push(chunk.text);
      })(),
    );
    expect(seen).toEqual(['first']);
    expect(error.code).toBe('DEADLINE_EXCEEDED');
    expect(error.grpcCode).toBe(status.DEADLINE_EXCEEDED);
    await fake.callsTo('generate')[0]!.cancelled;
  });

  it('can be consumed only once', async () => {
    const { client } = await setup({
      generate: (call: GenerateCall) => {
        call.write(finalToken('done'));
        call.end();
      },
    });
    const stream = client.generate(REQUEST);
    expect(await stream.text()).toBe('done');
    const error = await rejection(stream.text());
    expect(error.code).toBe('FAILED_PRECONDITION');
    expect(error.message).toContain('client.generate() again');
  });

  it('refuses a request without inputs before calling the server', async () => {
    const { fake, client } = await setup({});
    const error = await rejection(client.generate({ inputs: [], instruction: 'hi' }).text());
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'inputs' });
    expect(error.message).toContain('image(), audio()');
    expect(fake.calls).toHaveLength(0);
  });

  it('maps an error status with platform trailers to ImageBindError fields', async () => {
    const { client } = await setup({
      generate: (call: GenerateCall) => {
        const requestId = metadataValue(call.metadata, 'x-request-id');
        failStream(
          call,
          toGrpcStatus(DomainError.invalidInput('weight must be > 0', 'inputs[1].weight'), requestId) as {
            code: status;
          },
        );
      },
    });
    const stream = client.generate(REQUEST);
    const error = await rejection(stream.text());
    expect(error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      grpcCode: status.INVALID_ARGUMENT,
      details: 'weight must be > 0',
      domainCode: 'INVALID_INPUT',
      field: 'inputs[1].weight',
      requestId: stream.requestId,
    });
    expect(error.retryAfterMs).toBeUndefined();
    expect(error.message).toBe(
      `INVALID_ARGUMENT: weight must be > 0 (field inputs[1].weight, request id ${stream.requestId})`,
    );
  });
});

describe('ImageBindClient metadata', () => {
  it('sends the API key as a bearer token and the given x-request-id', async () => {
    const { fake, client } = await setup(
      { listModels: (_call, callback) => callback(null, { models: [] }) },
      { apiKey: 'sk-test-123' },
    );
    await client.listModels({ requestId: 'req-42' });
    const { metadata } = fake.callsTo('listModels')[0]!;
    expect(metadataValue(metadata, 'authorization')).toBe('Bearer sk-test-123');
    expect(metadataValue(metadata, 'x-request-id')).toBe('req-42');
  });

  it('generates a UUID request id per call and sends no authorization without a key', async () => {
    const { fake, client } = await setup({
      listModels: (_call, callback) => callback(null, { models: [] }),
      generate: (call: GenerateCall) => {
        call.write(finalToken('ok'));
        call.end();
      },
    });
    await client.listModels();
    await client.listModels();
    const stream = client.generate(REQUEST);
    await stream.text();
    const ids = fake.calls.map((c) => metadataValue(c.metadata, 'x-request-id'));
    expect(ids.every((id) => UUID.test(id ?? ''))).toBe(true);
    expect(new Set(ids).size).toBe(3);
    expect(ids[2]).toBe(stream.requestId);
    expect(metadataValue(fake.calls[0]!.metadata, 'authorization')).toBeUndefined();
  });
});

describe('ImageBindClient unary calls', () => {
  it('embed decodes little-endian float32 tensors into Float32Arrays', async () => {
    // Values exactly representable in float32, so equality is exact.
    const first = [0.5, -1.25, 3.75, 1024.125];
    const second = [-0.0625, 2, -3, 0.1875];
    const { fake, client } = await setup({
      embed: (_call, callback) =>
        callback(null, {
          embeddings: [
            { modality: commonV1.Modality.MODALITY_IMAGE, embedding: float32Tensor(first) },
            { modality: commonV1.Modality.MODALITY_TEXT, embedding: float32Tensor(second, [1, 4]) },
          ],
          fused: float32Tensor([1, 2, 3, 4]),
        }),
    });
    const result = await client.embed({ inputs: REQUEST.inputs, includeFused: true });
    expect(result.embeddings[0]?.modality).toBe(commonV1.Modality.MODALITY_IMAGE);
    expect(result.embeddings[0]?.vector).toBeInstanceOf(Float32Array);
    expect(Array.from(result.embeddings[0]!.vector)).toEqual(first);
    expect(Array.from(result.embeddings[1]!.vector)).toEqual(second);
    expect(Array.from(result.fused!)).toEqual([1, 2, 3, 4]);
    expect(result.cached).toBeUndefined();
    expect((fake.callsTo('embed')[0]!.request as gatewayV1.EmbedRequest).includeFused).toBe(true);
  });

  it('embed reports a tensor of the wrong dtype as INTERNAL with the request id', async () => {
    const { client } = await setup({
      embed: (_call, callback) =>
        callback(null, {
          embeddings: [
            {
              modality: commonV1.Modality.MODALITY_IMAGE,
              embedding: { ...float32Tensor([1, 2]), dtype: commonV1.DataType.DATA_TYPE_FLOAT16 },
            },
          ],
        }),
    });
    const error = await rejection(client.embed({ inputs: REQUEST.inputs }, { requestId: 'r-1' }));
    expect(error.code).toBe('INTERNAL');
    expect(error.details).toContain('DATA_TYPE_FLOAT16');
    expect(error.requestId).toBe('r-1');
  });

  it('search and listModels return the hits and models', async () => {
    const { fake, client } = await setup({
      search: (call: ServerUnaryCall<gatewayV1.SearchRequest, gatewayV1.SearchResponse>, callback) =>
        callback(null, {
          hits: [{ id: 7, score: 0.5, payload: { caption: `k=${call.request.k}` } }],
        }),
      listModels: (_call, callback) =>
        callback(null, { models: [{ name: 'llama-decoder', version: '1', ready: true }] }),
    });
    const hits = await client.search({ inputs: [text('a dog')], k: 3, collection: 'photos' });
    expect(hits).toEqual([{ id: 7, score: 0.5, payload: { caption: 'k=3' } }]);
    expect((fake.callsTo('search')[0]!.request as gatewayV1.SearchRequest).collection).toBe('photos');
    expect(await client.listModels()).toEqual([{ name: 'llama-decoder', version: '1', ready: true }]);
  });

  it('maps a unary deadline to DEADLINE_EXCEEDED', async () => {
    // The handler never answers: only the deadline ends the call, so 200 ms races nothing.
    const { fake, client } = await setup({ embed: () => undefined });
    const error = await rejection(client.embed({ inputs: REQUEST.inputs }, { timeoutMs: 200 }));
    expect(error.code).toBe('DEADLINE_EXCEEDED');
    await fake.callsTo('embed')[0]!.cancelled;
  });

  it('applies the client default timeout to unary calls', async () => {
    const { client } = await setup({ search: () => undefined }, { timeoutMs: 200 });
    const error = await rejection(client.search({ inputs: REQUEST.inputs }));
    expect(error.code).toBe('DEADLINE_EXCEEDED');
  });

  it('aborting a unary call cancels it with CANCELLED', async () => {
    const { fake, client } = await setup({ embed: () => undefined });
    const controller = new AbortController();
    const pending = client.embed({ inputs: REQUEST.inputs }, { signal: controller.signal });
    await waitFor(() => fake.calls.length === 1);
    controller.abort();
    const error = await rejection(pending);
    expect(error.code).toBe('CANCELLED');
    await fake.callsTo('embed')[0]!.cancelled;
  });

  it('maps a retry-after trailer and does not retry RESOURCE_EXHAUSTED', async () => {
    const { fake, client } = await setup({
      search: (_call, callback) => callback(toGrpcStatus(DomainError.overloaded('queue full', 1500))),
    });
    const error = await rejection(client.search({ inputs: REQUEST.inputs }));
    expect(error).toMatchObject({
      code: 'RESOURCE_EXHAUSTED',
      domainCode: 'OVERLOADED',
      retryAfterMs: 1500,
      details: 'queue full',
    });
    expect(fake.calls).toHaveLength(1);
  });

  it('fails calls after close() with FAILED_PRECONDITION', async () => {
    const { fake, client } = await setup({ listModels: (_call, callback) => callback(null, { models: [] }) });
    await client.listModels();
    client.close();
    const error = await rejection(client.listModels());
    expect(error.code).toBe('FAILED_PRECONDITION');
    expect(error.message).toContain('closed');
    expect(fake.calls).toHaveLength(1);
  });
});

/** Polls until `done` holds; the test's own timeout bounds it. */
async function waitFor(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setTimeout(resolve, 5));
}
