import { type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import { type gatewayV1 } from '@imagebind-llm/proto';
import { describe, expect, it } from 'vitest';
import { BatchJobKind, BatchJobState, text, uri } from './index';
import { batchJob, float32Bytes } from './testing/fake-gateway';
import { fakeGatewaySetup, imageBindRejection } from './testing/client-setup';

const setup = fakeGatewaySetup();
const rejection = imageBindRejection;

describe('batch jobs', () => {
  it('submits a job with its items and options and returns the job', async () => {
    const { fake, client } = await setup({
      submitBatchJob: (_call, callback) =>
        callback(null, { job: batchJob('job-1', BatchJobState.BATCH_JOB_STATE_QUEUED) }),
    });
    const job = await client.submitBatchJob({
      kind: BatchJobKind.BATCH_JOB_KIND_GENERATE,
      items: [
        { itemId: 'a', inputs: [text('a dog')] },
        { inputs: [uri('image', 'https://example.com/cat.jpg')], instruction: 'Name it.' },
      ],
      options: { instruction: 'Describe it.', sampling: { temperature: 0 } },
      clientToken: 'token-1',
    });
    expect(job).toMatchObject({ jobId: 'job-1', state: BatchJobState.BATCH_JOB_STATE_QUEUED });
    const request = fake.callsTo('submitBatchJob')[0]!.request as gatewayV1.SubmitBatchJobRequest;
    expect(request.kind).toBe(BatchJobKind.BATCH_JOB_KIND_GENERATE);
    expect(request.items.map((i) => [i.itemId, i.instruction])).toEqual([
      ['a', ''],
      ['', 'Name it.'],
    ]);
    expect(request.items[1]?.inputs[0]?.source).toEqual({
      $case: 'uri',
      value: 'https://example.com/cat.jpg',
    });
    expect(request.options?.instruction).toBe('Describe it.');
    expect(request.options?.sampling?.temperature).toBe(0);
    expect(request.clientToken).toBe('token-1');
  });

  it('refuses a job with both items and a manifest before calling the server', async () => {
    const { fake, client } = await setup({});
    const error = await rejection(
      client.submitBatchJob({
        kind: BatchJobKind.BATCH_JOB_KIND_EMBED,
        items: [{ inputs: [text('x')] }],
        manifestUri: 'https://example.com/items.jsonl',
      }),
    );
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'items' });
    const noKind = await rejection(
      client.submitBatchJob({ kind: 0, manifestUri: 'https://example.com/m.jsonl' }),
    );
    expect(noKind.field).toBe('kind');
    expect(fake.calls).toHaveLength(0);
  });

  it('gets, lists and cancels jobs', async () => {
    const { fake, client } = await setup({
      getBatchJob: (
        call: ServerUnaryCall<gatewayV1.GetBatchJobRequest, gatewayV1.GetBatchJobResponse>,
        callback,
      ) => callback(null, { job: batchJob(call.request.jobId, BatchJobState.BATCH_JOB_STATE_RUNNING) }),
      listBatchJobs: (
        call: ServerUnaryCall<gatewayV1.ListBatchJobsRequest, gatewayV1.ListBatchJobsResponse>,
        callback,
      ) =>
        callback(null, {
          jobs: [batchJob('job-2', BatchJobState.BATCH_JOB_STATE_SUCCEEDED)],
          nextPageToken: call.request.pageToken === '' ? 'page-2' : '',
        }),
      cancelBatchJob: (
        call: ServerUnaryCall<gatewayV1.CancelBatchJobRequest, gatewayV1.CancelBatchJobResponse>,
        callback,
      ) => callback(null, { job: batchJob(call.request.jobId, BatchJobState.BATCH_JOB_STATE_CANCELLING) }),
    });
    expect((await client.getBatchJob('job-7')).jobId).toBe('job-7');

    const first = await client.listBatchJobs({
      pageSize: 1,
      states: [BatchJobState.BATCH_JOB_STATE_SUCCEEDED],
    });
    expect(first.jobs.map((j) => j.jobId)).toEqual(['job-2']);
    expect(first.nextPageToken).toBe('page-2');
    const last = await client.listBatchJobs({ pageToken: 'page-2' });
    expect(last.nextPageToken).toBeUndefined();
    const listRequest = fake.callsTo('listBatchJobs')[0]!.request as gatewayV1.ListBatchJobsRequest;
    expect(listRequest).toEqual({
      pageSize: 1,
      pageToken: '',
      states: [BatchJobState.BATCH_JOB_STATE_SUCCEEDED],
    });

    expect((await client.cancelBatchJob('job-7')).state).toBe(BatchJobState.BATCH_JOB_STATE_CANCELLING);
  });

  it('refuses an empty job id', async () => {
    const { client } = await setup({});
    expect((await rejection(client.getBatchJob(''))).field).toBe('jobId');
  });

  it('streams item results of every kind, decoding embeddings', async () => {
    const { fake, client } = await setup({
      streamBatchJobResults: (
        call: ServerWritableStream<
          gatewayV1.StreamBatchJobResultsRequest,
          gatewayV1.StreamBatchJobResultsResponse
        >,
      ) => {
        call.write({ index: 3, itemId: 'a', result: { $case: 'text', value: 'A dog.' } });
        call.write({ index: 4, itemId: 'b', result: { $case: 'embedding', value: float32Bytes([0.5, -2]) } });
        call.write({ index: 5, itemId: 'c', result: { $case: 'pointId', value: 42 } });
        call.write({
          index: 6,
          itemId: 'd',
          result: { $case: 'error', value: { code: 'UNSUPPORTED_MEDIA', message: 'bad', attempts: 1 } },
        });
        call.end();
      },
    });
    const results = [];
    for await (const r of client.streamBatchJobResults('job-1', { startIndex: 3, follow: true }))
      results.push(r);
    expect(results.map((r) => [r.index, r.itemId, r.kind])).toEqual([
      [3, 'a', 'text'],
      [4, 'b', 'embedding'],
      [5, 'c', 'pointId'],
      [6, 'd', 'error'],
    ]);
    const [t, e, p, f] = results;
    expect(t?.kind === 'text' && t.text).toBe('A dog.');
    expect(e?.kind === 'embedding' && Array.from(e.embedding)).toEqual([0.5, -2]);
    expect(p?.kind === 'pointId' && p.pointId).toBe(42);
    expect(f?.kind === 'error' && f.error).toEqual({
      code: 'UNSUPPORTED_MEDIA',
      message: 'bad',
      attempts: 1,
    });
    expect(fake.callsTo('streamBatchJobResults')[0]!.request).toEqual({
      jobId: 'job-1',
      startIndex: 3,
      follow: true,
    });
  });

  it('cancels the result stream when the consumer stops early', async () => {
    const { fake, client } = await setup({
      streamBatchJobResults: (
        call: ServerWritableStream<
          gatewayV1.StreamBatchJobResultsRequest,
          gatewayV1.StreamBatchJobResultsResponse
        >,
      ) => {
        // A followed job that is still running: the stream stays open.
        call.write({ index: 0, itemId: 'a', result: { $case: 'text', value: 'first' } });
      },
    });
    for await (const r of client.streamBatchJobResults('job-1', { follow: true })) {
      expect(r.index).toBe(0);
      break;
    }
    await fake.callsTo('streamBatchJobResults')[0]!.cancelled;
  });
});
