import { parseArgs } from 'node:util';
import { constants } from 'node:os';
import {
  buildEncoderRepository,
  buildLanguageRepository,
  RepositoryStaging,
  type BuildEncodersOptions,
  QUANT_BLOCK_SIZES,
  type WeightFormat,
} from '@imagebind-llm/model-builder';
import { CliError, requireString } from '../cli-error';
import { PhaseProgressReporter } from '../phase-progress';
import { stderrSink, type ProgressSink } from '../progress-line';

export const MODELS_BUILD_USAGE = `ibllm models build [--imagebind PTH [--imagebind-config JSON]]
                   [--llama-dir DIR [--llama-type 7B] --adapter PTH [--knn INDEX]] --out REPO
                   [--dtype fp32|fp16] [--quantize int8|int4 [--quant-block 32|64|128]]
                   [--kv-dtype float32|float16]
                   [--external-data auto|always|never] [--version V]

Builds a model repository straight from the official checkpoint files (no Python):
  imagebind-vision/, imagebind-audio/, imagebind-text/, imagebind-point/
                   ImageBind encoders (with --imagebind; --dtype fp16 stores their weights as float16)
  bind/            bind network (adapter checkpoint)
  llama-decoder/   LLaMA with the per-layer visual injection (+ visual.onnx for the offsets)
  tokenizer/       the LLaMA SentencePiece model
  knn-cache/       the visual cache vectors (with --knn)
--dtype fp16 halves the files (onnxruntime's CPU provider widens them back to float32 at load);
--quantize int8|int4 stores linear layers block-quantized for MatMulNBits (CPU deployments);
--quant-block sets the decoder's inputs per block (default 32): 128 decodes about 2× faster with
int4 on AVX2 CPUs (fewer scales to apply) at a coarser scale per block.
--kv-dtype float16 makes the decoder's slot KV cache half-size (512 KiB per position on 7B instead
of 1 MiB; for GPU deployments, where the WebGPU provider keeps it on the device); float32 is exact.
The released adapter was trained on 7B_chinese (MODEL_SPEC B1): pass --llama-type 7B_chinese for real weights.

Progress goes to stderr: on a terminal one redrawn bar per long step (hashing a checkpoint, reading
a graph's tensors, copying the cache: percent, bytes done/total, MB/s, ETA); otherwise plain lines
every 5 s or 10 %. Components are built in <component>/.<version>.partial-<pid> and moved into
place only when the whole build is complete: Ctrl-C (exit 130), SIGTERM (143) or a failure removes
them and leaves a repository already at --out as it was.`;

/** Test seams: where progress goes, and a signal that cancels the build like Ctrl-C. */
export interface ModelsBuildIo {
  readonly progress?: ProgressSink;
  readonly signal?: AbortSignal;
}

class BuildInterrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

export async function modelsBuild(
  argv: string[],
  log: (line: string) => void,
  io: ModelsBuildIo = {},
): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'llama-dir': { type: 'string' },
      'llama-type': { type: 'string', default: '7B' },
      adapter: { type: 'string' },
      knn: { type: 'string' },
      out: { type: 'string' },
      imagebind: { type: 'string' },
      'imagebind-config': { type: 'string' },
      'external-data': { type: 'string', default: 'auto' },
      version: { type: 'string', default: '1' },
      dtype: { type: 'string', default: 'fp32' },
      quantize: { type: 'string' },
      'kv-dtype': { type: 'string', default: 'float32' },
      'quant-block': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    log(MODELS_BUILD_USAGE);
    return;
  }
  const external = values['external-data'];
  if (external !== 'auto' && external !== 'always' && external !== 'never') {
    throw new CliError(`--external-data must be auto, always or never, got ${JSON.stringify(external)}`);
  }
  if (values.dtype !== 'fp32' && values.dtype !== 'fp16') {
    throw new CliError(`--dtype must be fp32 or fp16, got ${JSON.stringify(values.dtype)}`);
  }
  if (values.quantize !== undefined && values.quantize !== 'int8' && values.quantize !== 'int4') {
    throw new CliError(`--quantize must be int8 or int4, got ${JSON.stringify(values.quantize)}`);
  }
  const kvDtype = values['kv-dtype'];
  if (kvDtype !== 'float32' && kvDtype !== 'float16') {
    throw new CliError(`--kv-dtype must be float32 or float16, got ${JSON.stringify(kvDtype)}`);
  }
  if (values.quantize !== undefined && values.dtype === 'fp16')
    throw new CliError('--quantize and --dtype fp16 exclude each other');
  const quantBlockText = values['quant-block'];
  const quantBlock = QUANT_BLOCK_SIZES.find((b) => String(b) === quantBlockText);
  if (quantBlockText !== undefined && quantBlock === undefined) {
    throw new CliError(
      `--quant-block must be ${QUANT_BLOCK_SIZES.join(', ')}, got ${JSON.stringify(quantBlockText)}`,
    );
  }
  if (quantBlock !== undefined && values.quantize === undefined) {
    throw new CliError('--quant-block applies to --quantize int8|int4 only');
  }
  const format: WeightFormat = values.quantize ?? (values.dtype === 'fp16' ? 'fp16' : 'fp32');
  const out = requireString(values, 'out');
  const language = values.adapter !== undefined || values['llama-dir'] !== undefined;
  if (!language && values.imagebind === undefined) {
    throw new CliError('nothing to build: pass --imagebind PTH and/or --llama-dir DIR --adapter PTH');
  }
  if (language) {
    requireString(values, 'adapter');
    requireString(values, 'llama-dir');
  }
  const started = Date.now();
  const version = values.version ?? '1';
  const progress = new PhaseProgressReporter(io.progress ?? stderrSink());
  const say = (line: string): void => {
    progress.clear();
    log(line);
  };
  // Every component is staged and committed together at the end: a rebuild that fails halfway
  // leaves the repository at --out as it was, not half old and half new.
  const staging = new RepositoryStaging(out, version);
  const controller = new AbortController();
  const cancel =
    io.signal === undefined ? controller.signal : AbortSignal.any([controller.signal, io.signal]);
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted !== undefined) {
      // A second Ctrl-C does not wait for the builder to reach its next check.
      staging.discard();
      progress.interrupt();
      log(`interrupted: removed the partial build; ${out} is as it was`);
      process.exit(128 + constants.signals[signal]);
    }
    interrupted = signal;
    controller.abort(new BuildInterrupted(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const common: Pick<
    BuildEncodersOptions,
    'out' | 'version' | 'externalData' | 'staging' | 'signal' | 'onProgress'
  > = { out, version, externalData: external, staging, signal: cancel, onProgress: say };
  const onBytes = (p: { phase: string; done: number; total: number; final?: boolean }): void =>
    progress.update(p);
  const build = async (): Promise<{ component: string; dir: string; bytes: number }[]> => {
    const done: { component: string; dir: string; bytes: number }[] = [];
    if (values.imagebind !== undefined) {
      done.push(
        ...(await buildEncoderRepository({
          ...common,
          onBytes,
          imagebind: values.imagebind,
          ...(values['imagebind-config'] === undefined
            ? {}
            : { imagebindConfig: values['imagebind-config'] }),
          format: values.dtype === 'fp16' ? 'fp16' : 'fp32',
        })),
      );
    }
    if (language) {
      const summary = await buildLanguageRepository({
        ...common,
        onBytes,
        adapter: requireString(values, 'adapter'),
        llamaDir: requireString(values, 'llama-dir'),
        llamaType: values['llama-type'] ?? '7B',
        ...(values.knn === undefined ? {} : { knn: values.knn }),
        format,
        kvDtype,
        ...(quantBlock === undefined ? {} : { quantBlock }),
      });
      done.push(...summary.components);
    }
    return done;
  };
  const written: { component: string; dir: string; bytes: number }[] = [];
  try {
    written.push(...(await build()));
    progress.close();
    staging.commit();
  } catch (error) {
    staging.discard();
    progress.interrupt();
    const reason: unknown = cancel.aborted ? cancel.reason : undefined;
    if (reason instanceof BuildInterrupted || cancel.aborted) {
      const signal = reason instanceof BuildInterrupted ? reason.signal : 'SIGINT';
      throw new CliError(
        `interrupted: removed the partial build; ${out} is as it was`,
        128 + constants.signals[signal],
      );
    }
    log(`build failed: removed the partial build; ${out} is as it was`);
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  for (const c of written) log(`wrote ${c.component} → ${c.dir} (${(c.bytes / 1024 ** 2).toFixed(1)} MiB)`);
  log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
