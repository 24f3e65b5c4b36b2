import { ErrorCode } from '@imagebind-llm/errors';
import {
  hostTensor,
  type ModalityInput,
  type PreprocessedEncoderInput,
  type TensorSpec,
} from '@imagebind-llm/inference';
import { InferenceMetrics, ServiceMetrics } from '@imagebind-llm/observability';
import { commonV1, type encoderV1 } from '@imagebind-llm/proto';
import { describe, expect, it } from 'vitest';
import { float32Tensor, readFloat32Tensor } from '@imagebind-llm/grpc-kit';
import { BatchingMetrics } from './batching-metrics';
import { EncoderRuntime } from './encoder-runtime';
import { EncoderServiceImpl } from './encoder.service-impl';
import { ModelSlot } from './model-slot';
import { fakeEncoderModel, fakeRowSession } from './testing/fake-row-session';
import { domainRejectionOf } from '@imagebind-llm/testing';

const { Modality, ModelState } = commonV1;
const IMAGE: TensorSpec[] = [{ name: 'image', dtype: 'float32', dims: ['batch', 3, 2, 2] }];
const VIDEO: TensorSpec[] = [{ name: 'video', dtype: 'float32', dims: ['batch', 'clips', 2] }];
const POINT: TensorSpec[] = [
  { name: 'neighborhood', dtype: 'float32', dims: ['batch', 1, 1, 3] },
  { name: 'center', dtype: 'float32', dims: ['batch', 1, 3] },
];

/** Fake preprocessing: remembers what it was given, makes an image of byte 0's value. */
function recordingPreprocess(seen: ModalityInput[]) {
  return async (input: ModalityInput): Promise<PreprocessedEncoderInput> => {
    seen.push(input);
    await Promise.resolve();
    if (input.modality === 'point') {
      const n = new Float32Array(3).fill(input.bytes![0]!);
      return {
        feeds: {
          neighborhood: hostTensor('float32', [1, 1, 1, 3], n),
          center: hostTensor('float32', [1, 1, 3], new Float32Array(3)),
        },
        preprocessed: { data: n, shape: [1, 3] },
      };
    }
    const data = new Float32Array(12).fill(input.bytes![0]!);
    return {
      feeds: { image: hostTensor('float32', [1, 3, 2, 2], data) },
      preprocessed: { data, shape: [3, 2, 2] },
    };
  };
}

function vision(options: { slot?: 'loading'; metrics?: BatchingMetrics; seen?: ModalityInput[] } = {}) {
  const runtime = new EncoderRuntime(
    [
      fakeEncoderModel('image', IMAGE, fakeRowSession()),
      fakeEncoderModel('video', VIDEO, fakeRowSession()),
      fakeEncoderModel('point', POINT, fakeRowSession()),
    ],
    {
      batcher: { maxBatchSize: 32, maxQueueDelayMs: 0, maxQueueSize: 64, maxConcurrentBatches: 1 },
      preprocess: recordingPreprocess(options.seen ?? []),
    },
  );
  const slot = options.slot === 'loading' ? new ModelSlot<EncoderRuntime>() : ModelSlot.ready(runtime);
  const impl = new EncoderServiceImpl(slot, {
    modalities: ['image', 'video'],
    limits: { maxInputs: 3, maxInputBytes: 64 },
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
  });
  return { impl, slot, runtime };
}

function request(partial: Partial<encoderV1.EncodeRequest>): encoderV1.EncodeRequest {
  return {
    modality: Modality.MODALITY_IMAGE,
    inputs: [{ source: { $case: 'content', value: Buffer.from([1]) }, mediaType: '' }],
    includeUnnormalized: false,
    includePreprocessed: false,
    ...partial,
  };
}

describe('EncoderServiceImpl.encode', () => {
  it('encodes each input and returns its embedding, plus the optional tensors only when asked', async () => {
    const { impl } = vision();
    const plain = await impl.encode(
      request({
        inputs: [
          { source: { $case: 'content', value: Buffer.from([1]) }, mediaType: 'a.png' },
          { source: { $case: 'content', value: Buffer.from([2]) }, mediaType: '' },
        ],
      }),
    );
    expect(plain.model).toEqual({ name: 'imagebind-vision', version: '1' });
    expect(plain.embeddings.map((e) => readFloat32Tensor(e.embedding, 'e').data[0])).toEqual([12, 24]);
    expect(plain.embeddings[0]!.unnormalized).toBeUndefined();
    expect(plain.embeddings[0]!.preprocessed).toBeUndefined();

    const full = await impl.encode(request({ includeUnnormalized: true, includePreprocessed: true }));
    const item = full.embeddings[0]!;
    expect(readFloat32Tensor(item.unnormalized, 'u').data[0]).toBe(24); // the fake's second output is 2×
    expect(readFloat32Tensor(item.preprocessed, 'p').shape).toEqual([3, 2, 2]);
  });

  it('encodes preprocessed tensors without preprocessing them again', async () => {
    const seen: ModalityInput[] = [];
    const { impl } = vision({ seen });
    const clip = float32Tensor(new Float32Array(6).fill(1), [3, 2]);
    const out = await impl.encode(
      request({
        modality: Modality.MODALITY_VIDEO,
        inputs: [{ source: { $case: 'preprocessed', value: clip }, mediaType: '' }],
      }),
    );
    expect(seen).toHaveLength(0);
    expect(readFloat32Tensor(out.embeddings[0]!.embedding, 'e').data[0]).toBe(2);
  });

  it.each([
    [
      Modality.MODALITY_UNSPECIFIED,
      /^modality: set it; this replica encodes MODALITY_IMAGE, MODALITY_VIDEO$/,
    ],
    [Modality.MODALITY_AUDIO, /this replica encodes MODALITY_IMAGE, MODALITY_VIDEO, not MODALITY_AUDIO/],
    [Modality.MODALITY_POINT_CLOUD, /not MODALITY_POINT_CLOUD/],
    [Modality.MODALITY_DEPTH, /not MODALITY_DEPTH/],
  ])('refuses modality %s with INVALID_ARGUMENT naming what it serves', async (modality, message) => {
    const { impl } = vision();
    const error = await domainRejectionOf(impl.encode(request({ modality })));
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(error.message).toMatch(message);
    expect(error.details.field).toBe('modality');
  });

  const content = (bytes: number[], mediaType = ''): encoderV1.EncoderInput => ({
    source: { $case: 'content', value: Buffer.from(bytes) },
    mediaType,
  });

  it.each<[string, Partial<encoderV1.EncodeRequest>, string, string | undefined]>([
    ['no inputs', { inputs: [] }, ErrorCode.InvalidInput, 'inputs'],
    [
      'too many inputs',
      { inputs: [content([1]), content([1]), content([1]), content([1])] },
      ErrorCode.PayloadTooLarge,
      'inputs',
    ],
    [
      'an input without a source',
      { inputs: [{ source: undefined, mediaType: '' }] },
      ErrorCode.InvalidInput,
      'inputs[0]',
    ],
    ['empty content', { inputs: [content([1]), content([])] }, ErrorCode.InvalidInput, 'inputs[1].content'],
    [
      'content over the byte limit',
      { inputs: [content(new Array<number>(65).fill(1))] },
      ErrorCode.PayloadTooLarge,
      'inputs[0].content',
    ],
    [
      'text for an image',
      { inputs: [{ source: { $case: 'text', value: 'a dog' }, mediaType: '' }] },
      ErrorCode.InvalidInput,
      'inputs[0].text',
    ],
    [
      'a float16 tensor',
      {
        inputs: [
          {
            source: {
              $case: 'preprocessed',
              value: { dtype: commonV1.DataType.DATA_TYPE_FLOAT16, shape: [3, 2, 2], data: Buffer.alloc(24) },
            },
            mediaType: '',
          },
        ],
      },
      ErrorCode.InvalidInput,
      'inputs[0].preprocessed',
    ],
    [
      'a tensor of the wrong layout',
      {
        inputs: [
          {
            source: { $case: 'preprocessed', value: float32Tensor(new Float32Array(12), [2, 2, 3]) },
            mediaType: '',
          },
        ],
      },
      ErrorCode.InvalidInput,
      'inputs[0].preprocessed',
    ],
    [
      'a NaN in a tensor',
      {
        inputs: [
          {
            source: {
              $case: 'preprocessed',
              value: float32Tensor(new Float32Array(12).fill(NaN), [3, 2, 2]),
            },
            mediaType: '',
          },
        ],
      },
      ErrorCode.InvalidInput,
      'inputs[0].preprocessed',
    ],
    [
      'another component',
      { model: { name: 'imagebind-audio', version: '' } },
      ErrorCode.NotFound,
      'model.name',
    ],
    ['a version not loaded', { model: { name: '', version: '7' } }, ErrorCode.NotFound, 'model.version'],
  ])('refuses %s', async (_what, partial, code, field) => {
    const { impl, runtime } = vision();
    const error = await domainRejectionOf(impl.encode(request(partial)));
    expect(error.code).toBe(code);
    expect(error.details.field).toBe(field);
    // Nothing reached a session.
    expect(runtime.stats().every((s) => s.stats.totals.submitted === 0)).toBe(true);
  });

  it('refuses content for text: text goes in the text field', async () => {
    const runtime = new EncoderRuntime(
      [fakeEncoderModel('text', [{ name: 'tokens', dtype: 'int64', dims: ['batch', 4] }], fakeRowSession())],
      { batcher: { maxBatchSize: 4, maxQueueDelayMs: 0, maxQueueSize: 4, maxConcurrentBatches: 1 } },
    );
    const impl = new EncoderServiceImpl(ModelSlot.ready(runtime), { modalities: ['text'] });
    const error = await domainRejectionOf(impl.encode(request({ modality: Modality.MODALITY_TEXT })));
    expect(error).toMatchObject({ code: ErrorCode.InvalidInput, details: { field: 'inputs[0].content' } });
    const blank = await domainRejectionOf(
      impl.encode(
        request({
          modality: Modality.MODALITY_TEXT,
          inputs: [{ source: { $case: 'text', value: '  ' }, mediaType: '' }],
        }),
      ),
    );
    expect(blank).toMatchObject({ code: ErrorCode.InvalidInput, details: { field: 'inputs[0].text' } });
  });

  it('answers MODEL_NOT_READY (retryable) while the models load, after checking the request', async () => {
    const { impl } = vision({ slot: 'loading' });
    expect((await domainRejectionOf(impl.encode(request({})))).code).toBe(ErrorCode.ModelNotReady);
    expect((await domainRejectionOf(impl.encode(request({ inputs: [] })))).code).toBe(ErrorCode.InvalidInput);
  });

  it('passes a file name derived from the media type and the content to point-cloud preprocessing', async () => {
    const seen: ModalityInput[] = [];
    const { runtime } = vision({ seen });
    const impl = new EncoderServiceImpl(ModelSlot.ready(runtime), { modalities: ['point'] });
    const zip = [0x50, 0x4b, 0x03, 0x04];
    await impl.encode(
      request({
        modality: Modality.MODALITY_POINT_CLOUD,
        // The hint says .npy, the bytes are a zip (torch.save): the content wins.
        inputs: [content(zip, 'cloud.npy'), content([...Buffer.from('1 2 3\n')], 'scan.xyz')],
      }),
    );
    expect(seen.map((s) => s.fileName)).toEqual(['cloud.pt', 'cloud.xyz']);
  });

  it('counts request outcomes and exports the queue depth per model', async () => {
    const metrics = new ServiceMetrics('encoder-test');
    const batching = new BatchingMetrics(new InferenceMetrics(metrics));
    const { impl, runtime } = vision({ metrics: batching });
    batching.track(() =>
      runtime.stats().map((s) => ({ label: s.model.label, queuedUnits: s.stats.queuedUnits })),
    );
    await impl.encode(request({}));
    await domainRejectionOf(impl.encode(request({ inputs: [] })));
    await domainRejectionOf(impl.encode(request({ modality: Modality.MODALITY_AUDIO })));
    const { body } = await metrics.scrape();
    expect(body).toContain(
      'ibllm_inference_requests_total{model="imagebind-vision:image",outcome="ok",service="encoder-test"} 1',
    );
    expect(body).toContain(
      'ibllm_inference_requests_total{model="imagebind-vision:image",outcome="invalid",service="encoder-test"} 1',
    );
    expect(body).toContain(
      'ibllm_inference_requests_total{model="unknown",outcome="invalid",service="encoder-test"} 1',
    );
    expect(body).toContain(
      'ibllm_batcher_queue_depth{model="imagebind-vision:video",service="encoder-test"} 0',
    );
  });
});

describe('EncoderServiceImpl.getModelStatus', () => {
  it('reports one entry per component: loading, then ready with its version and provider, or failed', async () => {
    const loading = vision({ slot: 'loading' });
    expect((await loading.impl.getModelStatus()).models).toEqual([
      {
        model: { name: 'imagebind-vision', version: '' },
        state: ModelState.MODEL_STATE_LOADING,
        executionProvider: '',
        sourceSha256: '',
        message: '',
      },
    ]);
    loading.slot.fill(loading.runtime);
    expect((await loading.impl.getModelStatus()).models).toEqual([
      {
        model: { name: 'imagebind-vision', version: '1' },
        state: ModelState.MODEL_STATE_READY,
        executionProvider: 'cpu',
        sourceSha256: 'f'.repeat(64),
        message: '',
      },
    ]);
    loading.slot.fail('session broke');
    const [failed] = (await loading.impl.getModelStatus()).models;
    expect(failed).toMatchObject({ state: ModelState.MODEL_STATE_FAILED, message: 'session broke' });
  });
});
