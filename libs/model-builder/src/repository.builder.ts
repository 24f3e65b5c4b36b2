import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  openTorchCheckpoint,
  readFaissIndex,
  validateStateDict,
  writeNpy,
  type TensorEntry,
} from '@imagebind-llm/checkpoint';
import type { TensorSpec } from '@imagebind-llm/inference';
import { bindKeys, buildBindGraph, detectBindConfig, type BindConfig } from './bind.builder';
import {
  adapterLlamaKeys,
  buildDecoderGraph,
  buildStateGraph,
  buildVisualGraph,
  type KvDtype,
  llamaBaseKeys,
  llamaConfigFrom,
  type LlamaConfig,
  type LlamaParamsJson,
} from './llama.builder';
import { bytesPerWeight, type WeightFormat } from './onnx/linear-weights';
import {
  BUILDER,
  componentDir,
  source,
  weightBytes,
  writeGraph,
  writeModelJson,
  type ExternalDataMode,
} from './repository-writer';
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
  readonly onProgress?: (message: string) => void;
}

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

const decoderInputs = (c: LlamaConfig, kv: KvDtype): TensorSpec[] => [
  { name: 'input_ids', dtype: 'int64', dims: ['batch', 'seq'] },
  { name: 'position_ids', dtype: 'int64', dims: ['batch', 'seq'] },
  { name: 'past_lengths', dtype: 'int64', dims: ['batch'] },
  { name: 'new_lengths', dtype: 'int64', dims: ['batch'] },
  { name: 'layer_offsets', dtype: 'float32', dims: ['batch', c.nLayers, c.dim] },
  { name: 'gather_rows', dtype: 'int64', dims: ['batch'] },
  { name: 'kv_write_index', dtype: 'int64', dims: ['batch', c.nHeads, 'seq', 3] },
  ...slotCache(c, kv, 'cache'),
];

const decoderOutputs = (c: LlamaConfig, kv: KvDtype): TensorSpec[] => [
  { name: 'logits', dtype: 'float32', dims: ['batch', c.vocabSize] },
  ...slotCache(c, kv, 'present'),
  ...Array.from({ length: c.nLayers }, (_, l) => [
    { name: `new_key_${l}`, dtype: kv, dims: ['batch', c.nHeads, 'seq', c.headDim] },
    { name: `new_value_${l}`, dtype: kv, dims: ['batch', c.nHeads, 'seq', c.headDim] },
  ]).flat(),
];

/**
 * `ibllm models build` for the language side: reads the official adapter and LLaMA checkpoints,
 * validates every key and shape, and writes the `bind`, `llama-decoder`, `tokenizer` and (with a
 * faiss index) `knn-cache` components of the model repository (ARCHITECTURE §4).
 */
export async function buildLanguageRepository(options: BuildRepositoryOptions): Promise<BuildSummary> {
  const say = options.onProgress ?? (() => undefined);
  const version = options.version ?? '1';
  const mode = options.externalData ?? 'auto';
  const format = options.format ?? 'fp32';
  const kvDtype = options.kvDtype ?? 'float32';
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
      await source('adapter', options.adapter),
      await source('llama', basePath),
      await source('llama-params', paramsPath),
    ];
    const components: BuildSummary['components'] = [];

    // bind
    const bindDir = componentDir(options.out, 'bind', version);
    say('building bind/model.onnx');
    const bindWritten = await writeGraph(
      bindDir,
      'model.onnx',
      weightBytes(bindKeys(bind).values(), format),
      mode,
      (sink) => buildBindGraph(weights, bind, sink, format),
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
    components.push({ component: 'bind', dir: bindDir, bytes: bindWritten.bytes });

    // decoder + visual offsets
    const decDir = componentDir(options.out, 'llama-decoder', version);
    const decoderBytes = weightBytes(llamaBaseKeys(llama).values(), format);
    say(
      `building llama-decoder/model.onnx (${llama.nLayers} layers, ~${(decoderBytes / 1024 ** 2).toFixed(0)} MiB of float32 weights)`,
    );
    const decWritten = await writeGraph(decDir, 'model.onnx', decoderBytes, mode, (sink) =>
      buildDecoderGraph(weights, llama, sink, {
        format,
        kvDtype,
        onLayer: (l) => say(`  layer ${l + 1}/${llama.nLayers}`),
      }),
    );
    say('building llama-decoder/visual.onnx');
    const visWritten = await writeGraph(
      decDir,
      'visual.onnx',
      2 * llama.nLayers * llama.dim * llama.dim * bytesPerWeight(format),
      mode,
      (sink) => buildVisualGraph(weights, llama, sink, format),
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
      files: { decoder: 'model.onnx', visual: 'visual.onnx', state: 'state.onnx' },
      dtype,
      graphs: {
        decoder: { inputs: decoderInputs(llama, kvDtype), outputs: decoderOutputs(llama, kvDtype) },
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
      config: { ...llama, llamaType: options.llamaType, bosId: 1, eosId: 2, kvDtype },
    });
    components.push({
      component: 'llama-decoder',
      dir: decDir,
      bytes: decWritten.bytes + visWritten.bytes + stateWritten.bytes,
    });

    // tokenizer
    const tokDir = componentDir(options.out, 'tokenizer', version);
    copyFileSync(tokenizerPath, join(tokDir, 'tokenizer.model'));
    writeModelJson(tokDir, {
      format: 1,
      component: 'tokenizer',
      version,
      builder,
      createdAt: created,
      sources: [await source('tokenizer', tokenizerPath)],
      files: { model: 'tokenizer.model' },
      dtype: 'n/a',
      config: { kind: 'sentencepiece-llama', bosId: 1, eosId: 2 },
    });
    components.push({ component: 'tokenizer', dir: tokDir, bytes: statSync(tokenizerPath).size });

    if (options.knn !== undefined) {
      say(`importing ${options.knn}`);
      const index = await readFaissIndex(options.knn);
      const knnDir = componentDir(options.out, 'knn-cache', version);
      writeNpy(join(knnDir, 'vectors.npy'), {
        dtype: 'float32',
        shape: [index.ntotal, index.d],
        data: new Uint8Array(index.vectors.buffer, index.vectors.byteOffset, index.vectors.byteLength),
      });
      writeModelJson(knnDir, {
        format: 1,
        component: 'knn-cache',
        version,
        builder,
        createdAt: created,
        sources: [await source('faiss-index', options.knn)],
        files: { vectors: 'vectors.npy' },
        dtype: 'float32',
        config: { indexType: index.type, metric: index.metric, dimension: index.d, count: index.ntotal },
      });
      components.push({ component: 'knn-cache', dir: knnDir, bytes: index.vectors.byteLength });
    }
    return { components, llama, bind };
  } finally {
    await adapterCkpt.close();
    await baseCkpt.close();
  }
}
