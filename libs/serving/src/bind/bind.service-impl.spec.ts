import { ErrorCode } from '@imagebind-llm/errors';
import { commonV1, type bindV1 } from '@imagebind-llm/proto';
import { describe, expect, it, vi } from 'vitest';
import { ModelSlot } from '../encoder/model-slot';
import { fakeRowSession } from '../encoder/testing/fake-row-session';
import { float32Tensor, readFloat32Tensor } from '@imagebind-llm/grpc-kit';
import { BindRuntime } from './bind-runtime';
import { BindServiceImpl } from './bind.service-impl';
import { domainRejectionOf } from '@imagebind-llm/testing';

const IN = 4;
const OUT = 2;

function bind(gated = false) {
  const session = fakeRowSession({ outputs: ['visual_query'], width: OUT, gated });
  const runtime = new BindRuntime(
    {
      component: 'bind',
      version: '3',
      label: 'bind',
      sourceSha256: 'a'.repeat(64),
      executionProvider: 'cpu',
      inDim: IN,
      outDim: OUT,
    },
    session,
    { batcher: { maxBatchSize: 8, maxQueueDelayMs: 0, maxQueueSize: 16, maxConcurrentBatches: 1 } },
  );
  return { session, runtime, slot: ModelSlot.ready(runtime) };
}

/** `rows` rows whose row r is all `base + r`. */
function rowsOf(base: number, rows: number, width = IN): Float32Array {
  const data = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) data.fill(base + r, r * width, (r + 1) * width);
  return data;
}

function request(
  queries: commonV1.Tensor | undefined,
  model?: { name: string; version: string },
): bindV1.ProjectRequest {
  return { queries, ...(model === undefined ? {} : { model }) };
}

describe('BindServiceImpl.project', () => {
  it('projects the rows of concurrent requests in one batch and answers each with its own rows', async () => {
    const { session, slot } = bind(true);
    const impl = new BindServiceImpl(slot);
    const first = impl.project(request(float32Tensor(rowsOf(1, 1), [1, IN])));
    await vi.waitFor(() => expect(session.runs).toHaveLength(1));
    const a = impl.project(request(float32Tensor(rowsOf(10, 2), [2, IN])));
    const b = impl.project(request(float32Tensor(rowsOf(20, 3), [3, IN])));
    await vi.waitFor(() => expect(slot.current!.stats().queuedUnits).toBe(5));
    await session.openGate();
    expect(session.runs[1]!.feeds['queries']!.dims).toEqual([5, IN]);
    await session.openGate();
    const [, ra, rb] = await Promise.all([first, a, b]);
    // The fake: row value v gives [4v, 4v + 1].
    expect(readFloat32Tensor(ra.visualQueries, 'v')).toEqual({
      data: Float32Array.from([40, 41, 44, 45]),
      shape: [2, OUT],
    });
    expect(readFloat32Tensor(rb.visualQueries, 'v').data).toEqual(
      Float32Array.from([80, 81, 84, 85, 88, 89]),
    );
    expect(ra.model).toEqual({ name: 'bind', version: '3' });
  });

  it.each<[string, bindV1.ProjectRequest, string, string]>([
    ['no queries', request(undefined), ErrorCode.InvalidInput, 'queries'],
    [
      'a vector instead of rows',
      request(float32Tensor(rowsOf(1, 1), [IN])),
      ErrorCode.InvalidInput,
      'queries',
    ],
    ['the wrong width', request(float32Tensor(rowsOf(1, 1, 3), [1, 3])), ErrorCode.InvalidInput, 'queries'],
    ['zero rows', request(float32Tensor(new Float32Array(0), [0, IN])), ErrorCode.InvalidInput, 'queries'],
    ['too many rows', request(float32Tensor(rowsOf(1, 3), [3, IN])), ErrorCode.PayloadTooLarge, 'queries'],
    [
      'an infinite value',
      request(float32Tensor(new Float32Array(IN).fill(Infinity), [1, IN])),
      ErrorCode.InvalidInput,
      'queries',
    ],
    [
      'another component',
      request(float32Tensor(rowsOf(1, 1), [1, IN]), { name: 'llama-decoder', version: '' }),
      ErrorCode.NotFound,
      'model.name',
    ],
    [
      'a version not loaded',
      request(float32Tensor(rowsOf(1, 1), [1, IN]), { name: 'bind', version: '1' }),
      ErrorCode.NotFound,
      'model.version',
    ],
  ])('refuses %s', async (_what, req, code, field) => {
    const { session, slot } = bind();
    const error = await domainRejectionOf(new BindServiceImpl(slot, { maxRows: 2 }).project(req));
    expect(error.code).toBe(code);
    expect(error.details.field).toBe(field);
    expect(session.runs).toHaveLength(0);
  });

  it('refuses as too large a request with more rows than the queue holds', async () => {
    const { session, slot } = bind();
    const error = await domainRejectionOf(
      new BindServiceImpl(slot, { maxRows: 100 }).project(request(float32Tensor(rowsOf(1, 17), [17, IN]))),
    );
    expect(error).toMatchObject({
      code: ErrorCode.PayloadTooLarge,
      details: { field: 'queries', limit: 16 },
    });
    expect(session.runs).toHaveLength(0);
  });

  it('answers MODEL_NOT_READY while loading and reports the model state', async () => {
    const { runtime } = bind();
    const slot = new ModelSlot<BindRuntime>();
    const impl = new BindServiceImpl(slot);
    expect((await domainRejectionOf(impl.project(request(float32Tensor(rowsOf(1, 1), [1, IN]))))).code).toBe(
      ErrorCode.ModelNotReady,
    );
    expect((await impl.getModelStatus()).models[0]!.state).toBe(commonV1.ModelState.MODEL_STATE_LOADING);
    slot.fill(runtime);
    expect((await impl.getModelStatus()).models).toEqual([
      {
        model: { name: 'bind', version: '3' },
        state: commonV1.ModelState.MODEL_STATE_READY,
        executionProvider: 'cpu',
        sourceSha256: 'a'.repeat(64),
        message: '',
      },
    ]);
    slot.close();
    expect((await domainRejectionOf(impl.project(request(float32Tensor(rowsOf(1, 1), [1, IN]))))).code).toBe(
      ErrorCode.DependencyUnavailable,
    );
  });
});
