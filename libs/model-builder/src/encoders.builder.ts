import { readFileSync } from 'node:fs';
import { openTorchCheckpoint, validateStateDict } from '@imagebind-llm/checkpoint';
import type { TensorSpec } from '@imagebind-llm/inference';
import {
  buildAudioGraph,
  buildPointGraph,
  buildTextGraph,
  buildVisionGraph,
  defaultImageBindConfig,
  EMBEDDING_OUTPUT,
  encoderKeys,
  HEAD_OUTPUT,
  imageBindKeys,
  parseImageBindConfig,
  type EncoderWeightFormat,
  type ImageBindConfig,
  type ImageBindEncoder,
} from './imagebind';
import type { GraphBuilder, InitializerSink } from './onnx/onnx-graph';
import { hashedSource, PhaseCounter, type BuildProgressListener } from './build-progress';
import { BUILDER, weightBytes, writeGraph, writeModelJson, type ExternalDataMode } from './repository-writer';
import { RepositoryStaging } from './repository-staging';
import { WeightStore } from './weights';

export interface BuildEncodersOptions {
  /** `imagebind_w3D.pth` (ImageBind-Huge + Point-Bind, plain state dict, MODEL_SPEC §3.8). */
  readonly imagebind: string;
  /** JSON in the layout of golden `imagebind_config.json`; imagebind_huge values when absent. */
  readonly imagebindConfig?: string;
  readonly out: string;
  readonly version?: string;
  readonly externalData?: ExternalDataMode;
  /**
   * Weight storage: `fp32` (default, exact) or `fp16` (matrices as float16 initializers widened
   * by a Cast: half the files, the same float32 computation; see EncoderWeightFormat).
   */
  readonly format?: EncoderWeightFormat;
  readonly onProgress?: (message: string) => void;
  /** Bytes done of each long step (hashing the checkpoint, reading each graph's tensors). */
  readonly onBytes?: BuildProgressListener;
  /** Cancels the build between two tensors; nothing of it is left behind. */
  readonly signal?: AbortSignal;
  /** Where components are staged; absent, the build stages its own and commits it at the end. */
  readonly staging?: RepositoryStaging;
}

interface EncoderComponent {
  readonly component: string;
  readonly encoder: ImageBindEncoder;
  /** Graphs of the component: file → builder and its inputs. */
  readonly graphs: readonly {
    readonly role: string;
    readonly file: string;
    readonly inputs: TensorSpec[];
    readonly build: (w: WeightStore, c: ImageBindConfig, o: GraphOptions) => Promise<GraphBuilder>;
  }[];
}

interface GraphOptions {
  readonly sink?: InitializerSink;
  readonly format: EncoderWeightFormat;
}

function components(c: ImageBindConfig): EncoderComponent[] {
  const p = c.point;
  return [
    {
      component: 'imagebind-vision',
      encoder: 'vision',
      graphs: [
        {
          role: 'image',
          file: 'image.onnx',
          inputs: [{ name: 'image', dtype: 'float32', dims: ['batch', 3, 224, 224] }],
          build: async (w, cfg, o) => buildVisionGraph(w, cfg, { input: 'image', ...o }),
        },
        {
          role: 'video',
          file: 'video.onnx',
          inputs: [{ name: 'video', dtype: 'float32', dims: ['batch', 'clips', 3, 2, 224, 224] }],
          build: async (w, cfg, o) => buildVisionGraph(w, cfg, { input: 'video', ...o }),
        },
      ],
    },
    {
      component: 'imagebind-audio',
      encoder: 'audio',
      graphs: [
        {
          role: 'model',
          file: 'model.onnx',
          inputs: [{ name: 'audio', dtype: 'float32', dims: ['batch', 'clips', 1, 128, 204] }],
          build: async (w, cfg, o) => buildAudioGraph(w, cfg, o),
        },
      ],
    },
    {
      component: 'imagebind-text',
      encoder: 'text',
      graphs: [
        {
          role: 'model',
          file: 'model.onnx',
          inputs: [{ name: 'tokens', dtype: 'int64', dims: ['batch', 77] }],
          build: async (w, cfg, o) => buildTextGraph(w, cfg, o),
        },
      ],
    },
    {
      component: 'imagebind-point',
      encoder: 'point',
      graphs: [
        {
          role: 'model',
          file: 'model.onnx',
          inputs: [
            { name: 'neighborhood', dtype: 'float32', dims: ['batch', p.num_group, p.group_size, 3] },
            { name: 'center', dtype: 'float32', dims: ['batch', p.num_group, 3] },
          ],
          build: async (w, cfg, o) => buildPointGraph(w, cfg, o),
        },
      ],
    },
  ];
}

/**
 * `ibllm models build --imagebind`: validates `imagebind_w3D.pth` strictly against every key of
 * MODEL_SPEC §3.8 and writes one component per encoder (vision: image.onnx and video.onnx; audio;
 * text; point), each graph returning the embedding after ImageBind's postprocessor and the head
 * output before it.
 */
export async function buildEncoderRepository(
  options: BuildEncodersOptions,
): Promise<{ component: string; dir: string; bytes: number }[]> {
  const staging = options.staging ?? new RepositoryStaging(options.out, options.version ?? '1');
  try {
    const written = await buildEncoderComponents(options, staging);
    if (options.staging === undefined) staging.commit();
    return written;
  } catch (error) {
    if (options.staging === undefined) staging.discard();
    throw error;
  }
}

async function buildEncoderComponents(
  options: BuildEncodersOptions,
  staging: RepositoryStaging,
): Promise<{ component: string; dir: string; bytes: number }[]> {
  const say = options.onProgress ?? (() => undefined);
  const { onBytes, signal } = options;
  const version = options.version ?? '1';
  const mode = options.externalData ?? 'auto';
  const format = options.format ?? 'fp32';
  const config =
    options.imagebindConfig === undefined
      ? defaultImageBindConfig()
      : parseImageBindConfig(JSON.parse(readFileSync(options.imagebindConfig, 'utf8')) as unknown);
  say(`reading ${options.imagebind}`);
  const ckpt = await openTorchCheckpoint(options.imagebind);
  try {
    const entries = ckpt.stateDict();
    validateStateDict(entries, imageBindKeys(config), { what: options.imagebind });
    const weights = new WeightStore(entries);
    let counter: PhaseCounter | undefined;
    weights.onRead = (bytes) => counter?.add(bytes);
    const sources = [await hashedSource('imagebind', options.imagebind, onBytes, signal)];
    if (options.imagebindConfig !== undefined)
      sources.push(await hashedSource('imagebind-config', options.imagebindConfig, onBytes, signal));
    const written: { component: string; dir: string; bytes: number }[] = [];
    for (const comp of components(config)) {
      const dir = staging.dir(comp.component);
      const names = [...encoderKeys(config, comp.encoder).keys()];
      let bytes = 0;
      const estimated = weightBytes(encoderKeys(config, comp.encoder).values(), format);
      for (const graph of comp.graphs) {
        say(`building ${comp.component}/${graph.file}`);
        signal?.throwIfAborted();
        counter = new PhaseCounter(
          `${comp.component}/${graph.file}`,
          weights.storedBytes(names),
          onBytes,
          signal,
        );
        const w = await writeGraph(dir, graph.file, estimated, mode, async (sink) =>
          graph.build(weights, config, { ...(sink === undefined ? {} : { sink }), format }),
        );
        counter.finish();
        counter = undefined;
        bytes += w.bytes;
      }
      writeModelJson(dir, {
        format: 1,
        component: comp.component,
        version,
        builder: BUILDER,
        createdAt: new Date().toISOString(),
        sources,
        files: Object.fromEntries(comp.graphs.map((g) => [g.role, g.file])),
        // The weights' storage type; inputs and outputs are float32 whatever it is.
        dtype: format === 'fp16' ? 'float16' : 'float32',
        graphs: Object.fromEntries(
          comp.graphs.map((g) => [
            g.role,
            {
              inputs: g.inputs,
              outputs: [EMBEDDING_OUTPUT, HEAD_OUTPUT].map((name) => ({
                name,
                dtype: 'float32',
                dims: ['batch', config.imagebind.out_embed_dim],
              })),
            },
          ]),
        ),
        config: { encoder: comp.encoder, imagebind: config.imagebind, point: config.point },
      });
      written.push({ component: comp.component, dir: staging.finalDir(comp.component), bytes });
    }
    return written;
  } finally {
    await ckpt.close();
  }
}
