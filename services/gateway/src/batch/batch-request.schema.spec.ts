import { ErrorCode } from '@imagebind-llm/errors';
import { gatewayV1 } from '@imagebind-llm/proto';
import { domainErrorOf } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { parseSubmitBatchJobRequest } from './batch-request.schema';

describe('parseSubmitBatchJobRequest', () => {
  it('reads the protobuf JSON mapping under either field name', () => {
    const request = parseSubmitBatchJobRequest({
      kind: 'BATCH_JOB_KIND_EMBED',
      manifest_uri: 'https://media.example.com/items.jsonl',
      client_token: 't1',
      options: { instruction: '' },
    });
    expect(request.kind).toBe(gatewayV1.BatchJobKind.BATCH_JOB_KIND_EMBED);
    expect(request.manifestUri).toBe('https://media.example.com/items.jsonl');
    expect(request.clientToken).toBe('t1');
    expect(parseSubmitBatchJobRequest({ kind: 2, items: [{ itemId: 'a' }] }).items[0]!.itemId).toBe('a');
  });

  it('ignores unknown keys, as the protobuf JSON mapping of the batch API always has', () => {
    expect(parseSubmitBatchJobRequest({ kind: 'BATCH_JOB_KIND_EMBED', note: 'x' }).kind).toBe(
      gatewayV1.BatchJobKind.BATCH_JOB_KIND_EMBED,
    );
  });

  it.each([
    [{ kind: 'BATCH_JOB_KIND_EMBED', manifestUri: 5 }, 'manifestUri: must be a string, got a number'],
    [{ kind: true }, 'kind: must be a job kind such as "BATCH_JOB_KIND_EMBED", got a boolean'],
    [{ items: {} }, 'items: must be an array, got an object'],
    [undefined, 'request body: must be a JSON object, got undefined'],
  ])('refuses %j naming the field', (body, message) => {
    const e = domainErrorOf(() => parseSubmitBatchJobRequest(body));
    expect(e.code).toBe(ErrorCode.InvalidInput);
    expect(e.message).toContain(message);
  });
});
