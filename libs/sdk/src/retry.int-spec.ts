import { Metadata, status, type ServerWritableStream } from '@grpc/grpc-js';
import { commonV1, gatewayV1 } from '@imagebind-llm/proto';
import { describe, expect, it } from 'vitest';
import { BatchJobKind, text } from './index';
import {
  batchJob,
  failStream,
  finalToken,
  float32Bytes,
  float32Tensor,
  metadataValue,
  token,
} from './testing/fake-gateway';
import { fakeGatewaySetup, imageBindRejection } from './testing/client-setup';

type GenerateCall = ServerWritableStream<gatewayV1.GenerateRequest, gatewayV1.GenerateResponse>;
type ResultsCall = ServerWritableStream<
  gatewayV1.StreamBatchJobResultsRequest,
  gatewayV1.StreamBatchJobResultsResponse
>;

const UNAVAILABLE = { code: status.UNAVAILABLE, details: 'replica restarting' };
const INPUTS = [text('a dog')];
// Tiny backoffs keep the suite fast; the backoff arithmetic has its own small test.
const RETRY = { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 4 };

const setup = fakeGatewaySetup();
const rejection = imageBindRejection;

describe('retries', () => {
  it('retries embed on UNAVAILABLE and succeeds on attempt 2 with the same request id', async () => {
    let attempts = 0;
    const { fake, client } = await setup({
      embed: (_call, callback) => {
        attempts++;
        if (attempts === 1) callback(UNAVAILABLE);
        else
          callback(null, {
            embeddings: [{ modality: commonV1.Modality.MODALITY_TEXT, embedding: float32Tensor([0.25]) }],
          });
      },
    });
    const result = await client.embed({ inputs: INPUTS });
    expect(Array.from(result.embeddings[0]!.vector)).toEqual([0.25]);
    const ids = fake.callsTo('embed').map((c) => metadataValue(c.metadata, 'x-request-id'));
    expect(ids).toHaveLength(2);
    expect(ids[1]).toBe(ids[0]);
  });

  it('gives up after maxAttempts and reports UNAVAILABLE', async () => {
    const { fake, client } = await setup({ search: (_call, callback) => callback(UNAVAILABLE) });
    const error = await rejection(client.search({ inputs: INPUTS }));
    expect(error).toMatchObject({ code: 'UNAVAILABLE', details: 'replica restarting' });
    expect(fake.callsTo('search')).toHaveLength(RETRY.maxAttempts);
  });

  it('does not retry errors other than UNAVAILABLE', async () => {
    const { fake, client } = await setup({
      listModels: (_call, callback) => callback({ code: status.INTERNAL, details: 'boom' }),
    });
    expect((await rejection(client.listModels())).code).toBe('INTERNAL');
    expect(fake.calls).toHaveLength(1);
  });

  it('never retries generate after the first token arrived', async () => {
    const { fake, client } = await setup({
      generate: (call: GenerateCall) => {
        call.write(token('A cat'));
        failStream(call, UNAVAILABLE);
      },
    });
    const seen: string[] = [];
    const error = await rejection(
      (async () => {
        for await (const chunk of client.generate({ inputs: INPUTS, instruction: 'What?' }))
          seen.push(chunk.text);
      })(),
    );
    expect(seen).toEqual(['A cat']);
    expect(error.code).toBe('UNAVAILABLE');
    expect(fake.callsTo('generate')).toHaveLength(1);
  });

  it('retries generate that failed with UNAVAILABLE before any token', async () => {
    let attempts = 0;
    const { fake, client } = await setup({
      generate: (call: GenerateCall) => {
        attempts++;
        if (attempts === 1) {
          failStream(call, UNAVAILABLE);
          return;
        }
        call.write(token('A dog'));
        call.write(finalToken('.'));
        call.end();
      },
    });
    expect(await client.generate({ inputs: INPUTS, instruction: 'What?' }).text()).toBe('A dog.');
    expect(fake.callsTo('generate')).toHaveLength(2);
  });

  it('does not retry cancelBatchJob', async () => {
    const { fake, client } = await setup({ cancelBatchJob: (_call, callback) => callback(UNAVAILABLE) });
    expect((await rejection(client.cancelBatchJob('job-1'))).code).toBe('UNAVAILABLE');
    expect(fake.calls).toHaveLength(1);
  });

  it('retries submitBatchJob with the same generated idempotency key', async () => {
    let attempts = 0;
    const { fake, client } = await setup({
      submitBatchJob: (_call, callback) => {
        attempts++;
        if (attempts === 1) callback(UNAVAILABLE);
        else callback(null, { job: batchJob('job-9', gatewayV1.BatchJobState.BATCH_JOB_STATE_QUEUED) });
      },
    });
    const job = await client.submitBatchJob({
      kind: BatchJobKind.BATCH_JOB_KIND_EMBED,
      items: [{ inputs: INPUTS }],
    });
    expect(job.jobId).toBe('job-9');
    const tokens = fake
      .callsTo('submitBatchJob')
      .map((c) => (c.request as gatewayV1.SubmitBatchJobRequest).clientToken);
    expect(tokens).toHaveLength(2);
    expect(tokens[0]).not.toBe('');
    expect(tokens[1]).toBe(tokens[0]);
  });

  it('resumes a broken result stream after the last item received', async () => {
    const result = (index: number): gatewayV1.StreamBatchJobResultsResponse => ({
      index,
      itemId: `item-${index}`,
      result: { $case: 'embedding', value: float32Bytes([index, -index]) },
    });
    const { fake, client } = await setup({
      streamBatchJobResults: (call: ResultsCall) => {
        const from = call.request.startIndex;
        if (from === 0) {
          call.write(result(0));
          call.write(result(1));
          failStream(call, UNAVAILABLE);
          return;
        }
        for (let i = from; i < 4; i++) call.write(result(i));
        call.end();
      },
    });
    const seen: number[] = [];
    for await (const item of client.streamBatchJobResults('job-1')) {
      expect(item.kind).toBe('embedding');
      if (item.kind === 'embedding') expect(Array.from(item.embedding)).toEqual([item.index, -item.index]);
      seen.push(item.index);
    }
    expect(seen).toEqual([0, 1, 2, 3]);
    const starts = fake
      .callsTo('streamBatchJobResults')
      .map((c) => (c.request as gatewayV1.StreamBatchJobResultsRequest).startIndex);
    expect(starts).toEqual([0, 2]);
  });

  it('stops retrying when the server retry hint outlasts the deadline', async () => {
    const { fake, client } = await setup({
      getBatchJob: (_call, callback) => {
        const metadata = new Metadata();
        metadata.set('ibllm-retry-after-ms', '60000');
        callback({ ...UNAVAILABLE, metadata });
      },
    });
    const error = await rejection(client.getBatchJob('job-3', { timeoutMs: 5_000 }));
    // The server's own error, not a DEADLINE_EXCEEDED after a pointless wait.
    expect(error).toMatchObject({ code: 'UNAVAILABLE', retryAfterMs: 60_000 });
    expect(fake.calls).toHaveLength(1);
  });
});
