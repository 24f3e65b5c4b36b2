import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  openFaissFlatIndex,
  openTorchCheckpoint,
  validateStateDict,
  writeNpyRows,
  type TensorEntry,
} from '@imagebind-llm/checkpoint';
import { STEP_GRAPH_INPUTS, type TensorSpec } from '@imagebind-llm/inference';
import { hashedSource, PhaseCounter, type BuildProgressListener } from './build-progress';
import { bindKeys, buildBindGraph, detectBindConfig, type BindConfig } from './bind.builder';
import {
  adapterLlamaKeys,
  buildDecoderGraph,
  buildStateGraph,
  buildVisualGraph,
  hostDecoderGraph,
  stepDecoderGraph,
  type KvDtype,
  llamaBaseKeys,
  llamaConfigFrom,
  type LlamaConfig,
  type LlamaParamsJson,
  windowNames,
} from './llama.builder';
import {
  bytesPerWeight,
  QUANT_BLOCK_SIZE,
  QUANT_BLOCK_SIZES,
  type QuantBlock,
  type WeightFormat,
} from './onnx/linear-weights';
import { BUILDER, weightBytes, writeGraph, writeModelJson, type ExternalDataMode } from './repository-writer';
import { RepositoryStaging } from './repository-staging';
import { WeightStore } from './weights';

export interface BuildRepositoryOptions {
  /** Adapter checkpoint (`7B.pth`: `{'model': state_dict}`). */
  readonly adapter: string;
  /** LLaMA directory holding `<llamaType>/consolidated.00.pth`, `params.json` and `tokenizer.model`. */
  readonly llamaDir: string;
  /** `7B` or `7B_chinese` (MODEL_SPEC B1: the released adapter was trained on 7B_chinese). */
  readonly llamaType: string;
  /** Faiss flat index for the visual cache. */
  readonly knn?: string;
  readonly out: string;
  readonly version?: string;
  /** "auto" writes external data only past 1 GiB of weights per graph. */
  readonly externalData?: ExternalDataMode;
  /** Storage of linear weights: fp32 (exact), fp16, int8 or int4 (MatMulNBits). */
  readonly format?: WeightFormat;
  /** Element type of the decoder's slot KV cache: float32 (exact, default) or float16. */
  readonly kvDtype?: KvDtype;
  /**
   * int8/int4: inputs per quantization block of the decoder's and visual graph's weights (32, 64
   * or 128; default 32). The bind network keeps 32: it runs once per request, not per token.
   */
  readonly quantBlock?: QuantBlock;
  /** Phase lines (`reading …`, `building …`), as before structured progress existed. */
  readonly onProgress?: (message: string) => void;
  /** Bytes done of each long step (hashing, reading a graph's tensors, copying the cache). */
  readonly onBytes?: BuildProgressListener;
  /** Cancels the build between two tensors (or chunks); nothing of it is left behind. */
  readonly signal?: AbortSignal;
  /**
   * Where components are staged. Given, the caller commits it (one commit for several builders);
   * absent, the build stages its own and commits it when every component is complete.
   */
  readonly staging?: RepositoryStaging;
}

/** Rows copied at a time from the faiss index to vectors.npy (16 MiB at d=1024). */
const KNN_ROWS_PER_CHUNK = 4096;

export interface BuildSummary {
  readonly components: { component: string; dir: string; bytes: number }[];
  readonly llama: LlamaConfig;
  readonly bind: BindConfig;
}

const ADAPTER_MARKERS = [
  'prefix_query.weight',
  'image_bind_proj.weight',
  'llama.layers.0.attention.lora_wq_l1.weight',
];
const BASE_MARKERS = ['tok_embeddings.weight', 'layers.0.attention.wq.weight', 'output.weight'];

/** Fails early, listing what is missing, when a file is clearly not the checkpoint it should be. */
function requireMarkers(
  entries: ReadonlyMap<string, TensorEntry>,
  markers: readonly string[],
  file: string,
  what: string,
): void {
  const missing = markers.filter((k) => !entries.has(k));
  if (missing.length === 0) return;
  const sample = [...entries.keys()].slice(0, 3).join(', ');
  throw new Error(
    `${file} does not look like ${what}: it lacks ${missing.join(', ')} (it has ${entries.size} tensors${sample === '' ? '' : `, e.g. ${sample}`})`,
  );
}

function prefixed(entries: ReadonlyMap<string, TensorEntry>, prefix: string): Map<string, TensorEntry> {
  return new Map([...entries].map(([k, v]) => [`${prefix}${k}`, v]));
}

const slotCache = (c: LlamaConfig, kv: KvDtype, prefix: string): TensorSpec[] =>
  Array.from({ length: c.nLayers }, (_, l) => [
    { name: `${prefix}_key_${l}`, dtype: kv, dims: ['slots', c.nHeads, 'capacity', c.headDim] },
    { name: `${prefix}_value_${l}`, dtype: kv, dims: ['slots', c.nHeads, 'capacity', c.headDim] },
  ]).flat();

/** The host graph's windows: the rows' [0, width) positions of every layer (hostDecoderGraph). */
const windows = (c: LlamaConfig, kv: KvDtype): TensorSpec[] =>
  Array.from({ length: c.nLayers }, (_, l) => [
    { name: windowNames(l).key, dtype: kv, dims: ['batch', c.nHeads, 'width', c.headDim] },
    { name: windowNames(l).value, dtype: kv, dims: ['batch', c.nHeads, 'width', c.headDim] },
  ]).flat();

/** model.onnx reads windows of whole slot buffers (past_*); model.host.onnx is fed the windows. */
const decoderInputs = (c: LlamaConfig, kv: KvDtype, graph: 'device' | 'host'): TensorSpec[] => [
  { name: 'input_ids', dtype: 'int64', dims: ['batch', 'seq'] },
  { name: 'position_ids', dtype: 'int64', dims: ['batch', 'seq'] },
  { name: 'past_lengths', dtype: 'int64', dims: ['batch'] },
  { name: 'new_lengths', dtype: 'int64', dims: ['batch'] },
  { name: 'layer_offsets', dtype: 'float32', dims: ['batch', c.nLayers, c.dim] },
  { name: 'gather_rows', dtype: 'int64', dims: ['batch'] },
  { name: 'kv_write_index', dtype: 'int64', dims: ['batch', c.nHeads, 'seq', 3] },
  ...(graph === 'device' ? slotCache(c, kv, 'past') : []),
  ...slotCache(c, kv, 'cache'),
  ...(graph === 'host' ? windows(c, kv) : []),
];

const decoderOutputs = (c: LlamaConfig, kv: KvDtype): TensorSpec[] => [
  { name: 'logits', dtype: 'float32', dims: ['batch', c.vocabSize] },
  { name: 'next_token', dtype: 'int64', dims: ['batch'] },
  ...slotCache(c, kv, 'present'),
  ...Array.from({ length: c.nLayers }, (_, l) => [
    { name: `new_key_${l}`, dtype: kv, dims: ['batch', c.nHeads, 'seq', c.headDim] },
    { name: `new_value_${l}`, dtype: kv, dims: ['batch', c.nHeads, 'seq', c.headDim] },
  ]).flat(),
];

/** model.step.onnx (stepDecoderGraph): one token per row over the first `batch` slots, in place. */
const stepInputs = (c: LlamaConfig, kv: KvDtype): TensorSpec[] => [
  { name: 'input_ids', dtype: 'int64', dims: ['batch', 1] },
  { name: 'layer_offsets', dtype: 'float32', dims: ['batch', c.nLayers, c.dim] },
  { name: 'gather_rows', dtype: 'int64', dims: ['batch'] },
  ...slotCache(c, kv, 'past'),
  { name: STEP_GRAPH_INPUTS.seqlens, dtype: 'int32', dims: ['batch'] },
  { name: STEP_GRAPH_INPUTS.total, dtype: 'int32', dims: [] },
];

const stepOutputs = (c: LlamaConfig, kv: KvDtype): TensorSpec[] => [
  { name: 'logits', dtype: 'float32', dims: ['batch', c.vocabSize] },
  { name: 'next_token', dtype: 'int64', dims: ['batch'] },
  ...slotCache(c, kv, 'present'),
];

/**
 * `ibllm models build` for the language side: reads the official adapter and LLaMA checkpoints,
 * validates every key and shape, and writes the `bind`, `llama-decoder`, `tokenizer` and (with a
 * faiss index) `knn-cache` components of the model repository (ARCHITECTURE §4).
 */
export async function buildLanguageRepository(options: BuildRepositoryOptions): Promise<BuildSummary> {
  const staging = options.staging ?? new RepositoryStaging(options.out, options.version ?? '1');
  try {
    const summary = await buildLanguageComponents(options, staging);
    if (options.staging === undefined) staging.commit();
    return summary;
  } catch (error) {
    if (options.staging === undefined) staging.discard();
    throw error;
  }
}

async function buildLanguageComponents(
  options: BuildRepositoryOptions,
  staging: RepositoryStaging,
): Promise<BuildSummary> {
  const say = options.onProgress ?? (() => undefined);
  const { onBytes, signal } = options;
  const version = options.version ?? '1';
  const mode = options.externalData ?? 'auto';
  const format = options.format ?? 'fp32';
  const kvDtype = options.kvDtype ?? 'float32';
  const quantBlock = options.quantBlock ?? QUANT_BLOCK_SIZE;
  if (!(QUANT_BLOCK_SIZES as readonly number[]).includes(quantBlock)) {
    throw new Error(`quantBlock must be one of ${QUANT_BLOCK_SIZES.join(', ')}, got ${String(quantBlock)}`);
  }
  const dtype = { fp32: 'float32', fp16: 'float16', int8: 'int8', int4: 'int4' }[format];
  const llamaTypeDir = join(options.llamaDir, options.llamaType);
  const basePath = join(llamaTypeDir, 'consolidated.00.pth');
  const paramsPath = join(llamaTypeDir, 'params.json');
  const tokenizerPath = join(options.llamaDir, 'tokenizer.model');
  for (const [what, p] of [
    ['adapter checkpoint', options.adapter],
    ['LLaMA weights', basePath],
    ['LLaMA params.json', paramsPath],
    ['tokenizer.model', tokenizerPath],
    ...(options.knn === undefined ? [] : [['knn index', options.knn]]),
  ] as const) {
    if (!existsSync(p)) throw new Error(`${what} not found: ${p}`);
  }
  const created = new Date().toISOString();
  const builder = BUILDER;

  say(`reading ${options.adapter}`);
  const adapterCkpt = await openTorchCheckpoint(options.adapter);
  say(`reading ${basePath}`);
  const baseCkpt = await openTorchCheckpoint(basePath);
  try {
    const root = adapterCkpt.root;
    const adapter =
      root instanceof Map && root.has('model') ? adapterCkpt.stateDict(['model']) : adapterCkpt.stateDict();
    const base = baseCkpt.stateDict();
    requireMarkers(adapter, ADAPTER_MARKERS, options.adapter, 'an ImageBind-LLM adapter checkpoint (7B.pth)');
    requireMarkers(base, BASE_MARKERS, basePath, 'a LLaMA checkpoint (consolidated.00.pth)');
    const params = JSON.parse(readFileSync(paramsPath, 'utf8')) as LlamaParamsJson;
    const weights = new WeightStore(prefixed(base, 'llama.'), adapter);
    let counter: PhaseCounter | undefined;
    weights.onRead = (bytes) => counter?.add(bytes);
    /** Builds one graph as a step: its progress is the bytes of the tensors it reads. */
    const graphStep = async <T>(
      phase: string,
      names: Iterable<string>,
      run: () => Promise<T>,
    ): Promise<T> => {
      signal?.throwIfAborted();
      counter = new PhaseCounter(phase, weights.storedBytes(names), onBytes, signal);
      const result = await run();
      counter.finish();
      counter = undefined;
      return result;
    };
    const llama = llamaConfigFrom(params, weights);
    const bind = detectBindConfig(weights);
    if (bind.dim !== llama.dim)
      throw new Error(`the bind network outputs ${bind.dim} values but LLaMA's dim is ${llama.dim}`);

    // The official loader ignores rope.freqs (non-strict) and asserts no unexpected adapter keys.
    validateStateDict(base, llamaBaseKeys(llama), { allowUnexpected: ['rope.freqs'], what: basePath });
    validateStateDict(adapter, new Map([...bindKeys(bind), ...adapterLlamaKeys(llama)]), {
      what: options.adapter,
    });
    say(
      `checkpoints valid: LLaMA dim ${llama.dim}, ${llama.nLayers} layers, ${llama.nHeads} heads, vocab ${llama.vocabSize}; bind ${bind.inDim}→${bind.hidden}→${bind.dim}${bind.legacy ? ' (legacy LayerNorm bridge)' : ''}`,
    );

    const sources = [
      await hashedSource('adapter', options.adapter, onBytes, signal),
      await hashedSource('llama', basePath, onBytes, signal),
      await hashedSource('llama-params', paramsPath, onBytes, signal),
    ];
    const components: BuildSummary['components'] = [];

    // bind
    const bindDir = staging.dir('bind');
    say('building bind/model.onnx');
    const bindWritten = await graphStep('bind/model.onnx', bindKeys(bind).keys(), async () =>
      writeGraph(bindDir, 'model.onnx', weightBytes(bindKeys(bind).values(), format), mode, (sink) =>
        buildBindGraph(weights, bind, sink, format),
      ),
    );
    writeModelJson(bindDir, {
      format: 1,
      component: 'bind',
      version,
      builder,
      createdAt: created,
      sources: sources.filter((s) => s.role === 'adapter'),
      files: { model: 'model.onnx' },
      dtype,
      graphs: {
        model: {
          inputs: [{ name: 'queries', dtype: 'float32', dims: ['batch', bind.inDim] }],
          outputs: [{ name: 'visual_query', dtype: 'float32', dims: ['batch', bind.dim] }],
        },
      },
      config: { ...bind },
    });
    components.push({ component: 'bind', dir: staging.finalDir('bind'), bytes: bindWritten.bytes });

    // decoder + visual offsets
    const decDir = staging.dir('llama-decoder');
    const decoderNames = [
      ...[...llamaBaseKeys(llama).keys()].map((k) => `llama.${k}`),
      ...adapterLlamaKeys(llama).keys(),
    ];
    const decoderBytes = weightBytes(llamaBaseKeys(llama).values(), format);
    say(
      `building llama-decoder/model.onnx and model.host.onnx (${llama.nLayers} layers, ~${(decoderBytes / 1024 ** 2).toFixed(0)} MiB of float32 weights)`,
    );
    // model.onnx for a session that keeps the slot cache on the device, model.host.onnx (the same
    // graph fed the windows it would slice) for one that keeps it in host memory; external weights
    // go to one file both point at.
    const decWritten = await graphStep('llama-decoder/model.onnx', decoderNames, async () =>
      writeGraph(
        decDir,
        'model.onnx',
        decoderBytes,
        mode,
        (sink) =>
          buildDecoderGraph(weights, llama, sink, {
            format,
            kvDtype,
            quantBlock,
            onLayer: (l) => say(`  layer ${l + 1}/${llama.nLayers}`),
          }),
        [
          { file: 'model.host.onnx', derive: (g) => hostDecoderGraph(g, llama, kvDtype) },
          { file: 'model.step.onnx', derive: (g) => stepDecoderGraph(g, llama, kvDtype) },
        ],
      ),
    );
    say('building llama-decoder/visual.onnx');
    // What buildVisualGraph reads: the prefix queries, and per layer the gate, wv and wo (+ its LoRA).
    const visualNames = [
      'prefix_query.weight',
      ...Array.from({ length: llama.nLayers }, (_, l) =>
        ['gate', 'wv.weight', 'wo.weight', 'lora_wo_l1.weight', 'lora_wo_l2.weight'].map(
          (k) => `llama.layers.${l}.attention.${k}`,
        ),
      ).flat(),
    ];
    const visWritten = await graphStep('llama-decoder/visual.onnx', visualNames, async () =>
      writeGraph(
        decDir,
        'visual.onnx',
        2 * llama.nLayers * llama.dim * llama.dim * bytesPerWeight(format, quantBlock),
        mode,
        (sink) => buildVisualGraph(weights, llama, sink, format, quantBlock),
      ),
    );
    const stateWritten = await writeGraph(decDir, 'state.onnx', 0, 'never', () =>
      Promise.resolve(buildStateGraph()),
    );
    writeModelJson(decDir, {
      format: 1,
      component: 'llama-decoder',
      version,
      builder,
      createdAt: created,
      sources,
      files: {
        decoder: 'model.onnx',
        hostDecoder: 'model.host.onnx',
        stepDecoder: 'model.step.onnx',
        visual: 'visual.onnx',
        state: 'state.onnx',
      },
      dtype,
      graphs: {
        decoder: { inputs: decoderInputs(llama, kvDtype, 'device'), outputs: decoderOutputs(llama, kvDtype) },
        hostDecoder: {
          inputs: decoderInputs(llama, kvDtype, 'host'),
          outputs: decoderOutputs(llama, kvDtype),
        },
        stepDecoder: { inputs: stepInputs(llama, kvDtype), outputs: stepOutputs(llama, kvDtype) },
        visual: {
          inputs: [{ name: 'visual_query', dtype: 'float32', dims: ['batch', llama.dim] }],
          outputs: [{ name: 'layer_offsets', dtype: 'float32', dims: ['batch', llama.nLayers, llama.dim] }],
        },
        state: {
          inputs: [
            { name: 'shape', dtype: 'int64', dims: [1] },
            { name: 'rows', dtype: 'float32', dims: ['r', 'w'] },
            { name: 'row_index', dtype: 'int64', dims: [1, 1] },
            { name: 'row_values', dtype: 'float32', dims: [1, 'w'] },
          ],
          outputs: [
            { name: 'zeros_float32', dtype: 'float32', dims: ['n'] },
            { name: 'zeros_float16', dtype: 'float16', dims: ['n'] },
            { name: 'rows_out', dtype: 'float32', dims: ['r', 'w'] },
          ],
        },
      },
      config: {
        ...llama,
        llamaType: options.llamaType,
        bosId: 1,
        eosId: 2,
        kvDtype,
        ...(format === 'int8' || format === 'int4' ? { quantBlock } : {}),
      },
    });
    components.push({
      component: 'llama-decoder',
      dir: staging.finalDir('llama-decoder'),
      bytes: decWritten.bytes + visWritten.bytes + stateWritten.bytes,
    });

    // tokenizer
    const tokDir = staging.dir('tokenizer');
    copyFileSync(tokenizerPath, join(tokDir, 'tokenizer.model'));
    writeModelJson(tokDir, {
      format: 1,
      component: 'tokenizer',
      version,
      builder,
      createdAt: created,
      sources: [await hashedSource('tokenizer', tokenizerPath, onBytes, signal)],
      files: { model: 'tokenizer.model' },
      dtype: 'n/a',
      config: { kind: 'sentencepiece-llama', bosId: 1, eosId: 2 },
    });
    components.push({
      component: 'tokenizer',
      dir: staging.finalDir('tokenizer'),
      bytes: statSync(tokenizerPath).size,
    });

    if (options.knn !== undefined) {
      say(`importing ${options.knn}`);
      const knnDir = staging.dir('knn-cache');
      const knnSource = await hashedSource('faiss-index', options.knn, onBytes, signal);
      const cache = await copyKnnVectors(options.knn, join(knnDir, 'vectors.npy'), onBytes, signal);
      writeModelJson(knnDir, {
        format: 1,
        component: 'knn-cache',
        version,
        builder,
        createdAt: created,
        sources: [knnSource],
        files: { vectors: 'vectors.npy' },
        dtype: 'float32',
        config: { indexType: cache.type, metric: cache.metric, dimension: cache.d, count: cache.ntotal },
      });
      components.push({ component: 'knn-cache', dir: staging.finalDir('knn-cache'), bytes: cache.bytes });
    }
    return { components, llama, bind };
  } finally {
    await adapterCkpt.close();
    await baseCkpt.close();
  }
}

/**
 * Copies a faiss flat index's vectors into `[ntotal, d]` float32 `.npy`, a chunk of rows at a time:
 * the real index (3.25 M × 1024, 13.3 GB) is never in memory, only one 16 MiB chunk of it.
 */
async function copyKnnVectors(
  knn: string,
  npy: string,
  onBytes: BuildProgressListener | undefined,
  signal: AbortSignal | undefined,
): Promise<{ type: string; metric: string; d: number; ntotal: number; bytes: number }> {
  const index = await openFaissFlatIndex(knn);
  try {
    const counter = new PhaseCounter('knn-cache/vectors.npy', index.ntotal * index.d * 4, onBytes, signal);
    const chunks = async function* (): AsyncGenerator<Uint8Array> {
      for await (const { vectors } of index.batches(KNN_ROWS_PER_CHUNK)) {
        yield new Uint8Array(vectors.buffer, vectors.byteOffset, vectors.byteLength);
      }
    };
    const bytes = await writeNpyRows(npy, 'float32', [index.ntotal, index.d], chunks(), (n) =>
      counter.add(n),
    );
    counter.finish();
    return { type: index.type, metric: index.metric, d: index.d, ntotal: index.ntotal, bytes };
  } finally {
    await index.close();
  }
}
