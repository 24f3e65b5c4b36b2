import { status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { DomainError } from '@imagebind-llm/errors';
// The platform's own status mapping, so these tests read what a real gateway writes.
import { toGrpcStatus } from '@imagebind-llm/grpc-kit';
import { commonV1, type gatewayV1 } from '@imagebind-llm/proto';
import { describe, expect, it } from 'vitest';
import { type ImageBindError, text, type EmbedManyResult } from './index';
import { float32Tensor, metadataValue, type FakeHandlers } from './testing/fake-gateway';
import { fakeGatewaySetup, imageBindRejection } from './testing/client-setup';

type EmbedManyCall = ServerUnaryCall<gatewayV1.EmbedManyRequest, gatewayV1.EmbedManyResponse>;
type EmbedCall = ServerUnaryCall<gatewayV1.EmbedRequest, gatewayV1.EmbedResponse>;

const setup = fakeGatewaySetup();
const rejection = imageBindRejection;

/** The text of a request's first input. */
function textOf(request: gatewayV1.EmbedRequest): string {
  const source = request.inputs[0]?.source;
  return source?.$case === 'text' ? source.value : '';
}

/** What the fake answers a text with: "fail" with OVERLOADED (retry after 1.5 s), else a vector. */
const OVERLOADED = DomainError.overloaded('the text encoder is at capacity', 1500);
function responseFor(value: string): gatewayV1.EmbedResponse {
  const n = value.length;
  return {
    embeddings: [{ modality: commonV1.Modality.MODALITY_TEXT, embedding: float32Tensor([n, 0, 0, 0]) }],
    fused: float32Tensor([n, 1, 2, 3]),
  };
}

/** The EmbedError a gateway answers for `error` within EmbedMany: Embed's status, as fields. */
function embedErrorOf(error: DomainError): gatewayV1.EmbedError {
  const s = toGrpcStatus(error);
  return {
    code: metadataValue(s.metadata!, 'ibllm-error-code') ?? '',
    message: s.details!,
    field: metadataValue(s.metadata!, 'ibllm-error-field') ?? '',
    ...(error.details.retryAfterMs === undefined ? {} : { retryAfterMs: error.details.retryAfterMs }),
    statusCode: s.code!,
  };
}

/** A fake gateway whose Embed and EmbedMany answer the same texts the same way. */
const consistent: FakeHandlers = {
  embed: (call: EmbedCall, callback: sendUnaryData<gatewayV1.EmbedResponse>) => {
    const value = textOf(call.request);
    if (value === 'fail') callback(toGrpcStatus(OVERLOADED));
    else callback(null, responseFor(value));
  },
  embedMany: (call: EmbedManyCall, callback: sendUnaryData<gatewayV1.EmbedManyResponse>) => {
    callback(null, {
      results: call.request.requests.map((r) =>
        textOf(r) === 'fail'
          ? { result: { $case: 'error', value: embedErrorOf(OVERLOADED) } }
          : { result: { $case: 'response', value: responseFor(textOf(r)) } },
      ),
    });
  },
};

function failed(result: EmbedManyResult | undefined): ImageBindError {
  if (result === undefined || result.ok) throw new Error('expected a failed result');
  return result.error;
}

describe('ImageBindClient.embedMany', () => {
  it('sends the requests in one call and returns, per request, what embed returns or throws', async () => {
    const { fake, client } = await setup(consistent);
    const requests = [
      { inputs: [text('a dog')], includeFused: true },
      { inputs: [text('fail')], includeFused: true },
      { inputs: [text('three')], includeFused: true, normalize: true },
    ];
    const results = await client.embedMany(requests, { requestId: 'many-1' });
    expect(fake.callsTo('embedMany')).toHaveLength(1);
    const sent = fake.callsTo('embedMany')[0]!.request as gatewayV1.EmbedManyRequest;
    expect(sent.requests.map(textOf)).toEqual(['a dog', 'fail', 'three']);

    expect(results.map((r) => r.ok)).toEqual([true, false, true]);
    for (const i of [0, 2]) {
      const r = results[i]!;
      expect(r.ok && r.result).toEqual(await client.embed(requests[i]!));
    }
    // normalize stays per request: unit length for the third only.
    const vectorOf = (r: EmbedManyResult | undefined): number[] =>
      r?.ok === true ? Array.from(r.result.embeddings[0]!.vector) : [];
    expect(vectorOf(results[2])).toEqual([1, 0, 0, 0]);
    expect(vectorOf(results[0])).toEqual([5, 0, 0, 0]);

    const single = await rejection(client.embed(requests[1]!, { requestId: 'many-1' }));
    const many = failed(results[1]);
    for (const key of [
      'code',
      'grpcCode',
      'details',
      'domainCode',
      'field',
      'retryAfterMs',
      'requestId',
      'message',
    ] as const) {
      expect(many[key], key).toEqual(single[key]);
    }
    expect(many).toMatchObject({ code: 'RESOURCE_EXHAUSTED', domainCode: 'OVERLOADED', retryAfterMs: 1500 });
  });

  it('refuses a request the SDK refuses for embed without sending it; the others go', async () => {
    const { fake, client } = await setup(consistent);
    const results = await client.embedMany([
      { inputs: [] },
      { inputs: [text('ok')] },
      { inputs: [text('x')], includeFused: 'yes' as unknown as boolean },
    ]);
    expect(
      (fake.callsTo('embedMany')[0]!.request as gatewayV1.EmbedManyRequest).requests.map(textOf),
    ).toEqual(['ok']);
    expect(results[1]!.ok).toBe(true);
    const empty = failed(results[0]);
    const local = await rejection(client.embed({ inputs: [] }));
    expect(empty).toMatchObject({ code: local.code, field: local.field, details: local.details });
    expect(failed(results[2])).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'includeFused' });

    // Nothing left to send: no call at all.
    const none = await client.embedMany([{ inputs: [] }]);
    expect(none[0]!.ok).toBe(false);
    expect(fake.callsTo('embedMany')).toHaveLength(1);
    await expect(client.embedMany([])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'requests' });
  });

  it('sends the call metadata as embed does: request id, API key, trace context', async () => {
    const { fake, client } = await setup(consistent, { apiKey: 'key-0123456789abcdef' });
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await client.embedMany([{ inputs: [text('a')] }], {
      requestId: 'many-2',
      traceContext: { traceparent },
      timeoutMs: 5_000,
    });
    const metadata = fake.callsTo('embedMany')[0]!.metadata;
    expect(metadataValue(metadata, 'x-request-id')).toBe('many-2');
    expect(metadataValue(metadata, 'authorization')).toBe('Bearer key-0123456789abcdef');
    expect(metadataValue(metadata, 'traceparent')).toBe(traceparent);
  });

  it('throws when the call fails as a whole: deadline, abort, a refusal of the call', async () => {
    const { fake, client } = await setup({
      embedMany: (call: EmbedManyCall, callback: sendUnaryData<gatewayV1.EmbedManyResponse>) => {
        if (call.request.requests.length > 2) {
          callback(
            toGrpcStatus(DomainError.invalidInput('requests: 3 requests exceed the limit of 2', 'requests')),
          );
        }
        // Otherwise never answers: only the deadline or the abort ends the call.
      },
    });
    const tooMany = await rejection(client.embedMany([1, 2, 3].map((i) => ({ inputs: [text(`t${i}`)] }))));
    expect(tooMany).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'requests',
      domainCode: 'INVALID_INPUT',
    });

    const late = await rejection(client.embedMany([{ inputs: [text('a')] }], { timeoutMs: 200 }));
    expect(late.code).toBe('DEADLINE_EXCEEDED');

    const controller = new AbortController();
    const pending = client.embedMany([{ inputs: [text('a')] }], { signal: controller.signal });
    while (fake.callsTo('embedMany').length < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    controller.abort();
    expect((await rejection(pending)).code).toBe('CANCELLED');
    await fake.callsTo('embedMany')[2]!.cancelled;
  });

  it('is retried on UNAVAILABLE, as the contract declares it NO_SIDE_EFFECTS', async () => {
    let calls = 0;
    const { client } = await setup(
      {
        embedMany: (call: EmbedManyCall, callback: sendUnaryData<gatewayV1.EmbedManyResponse>) => {
          if (++calls === 1) callback({ code: status.UNAVAILABLE, details: 'restarting' });
          else consistent.embedMany!(call, callback);
        },
      },
      { retry: { initialBackoffMs: 10 } },
    );
    const results = await client.embedMany([{ inputs: [text('abc')] }]);
    expect(calls).toBe(2);
    expect(results[0]!.ok).toBe(true);
  });

  it('reports a response that breaks the contract as INTERNAL: per request, or for the call', async () => {
    const { client } = await setup({
      embedMany: (call: EmbedManyCall, callback: sendUnaryData<gatewayV1.EmbedManyResponse>) => {
        if (call.request.requests.length === 1) {
          callback(null, { results: [] });
          return;
        }
        callback(null, {
          results: [
            { result: undefined },
            {
              result: {
                $case: 'response',
                value: {
                  embeddings: [
                    {
                      modality: 0,
                      embedding: { ...float32Tensor([1]), dtype: commonV1.DataType.DATA_TYPE_FLOAT16 },
                    },
                  ],
                },
              },
            },
            { result: { $case: 'error', value: { code: '', message: 'odd', field: '', statusCode: 0 } } },
          ],
        });
      },
    });
    const results = await client.embedMany(
      [1, 2, 3].map((i) => ({ inputs: [text(`t${i}`)] })),
      {
        requestId: 'many-3',
      },
    );
    expect(failed(results[0])).toMatchObject({ code: 'INTERNAL', requestId: 'many-3' });
    expect(failed(results[1])).toMatchObject({ code: 'INTERNAL', requestId: 'many-3' });
    expect(failed(results[2])).toMatchObject({ code: 'UNKNOWN', details: 'odd', domainCode: undefined });
    const whole = await rejection(client.embedMany([{ inputs: [text('a')] }], { requestId: 'many-4' }));
    expect(whole).toMatchObject({ code: 'INTERNAL', requestId: 'many-4' });
    expect(whole.details).toContain('0 results for 1 requests');
  });
});
