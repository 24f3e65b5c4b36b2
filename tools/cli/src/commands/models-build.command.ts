import { parseArgs } from 'node:util';
import {
  buildEncoderRepository,
  buildLanguageRepository,
  type WeightFormat,
} from '@imagebind-llm/model-builder';
import { CliError, requireString } from '../cli-error';

export const MODELS_BUILD_USAGE = `ibllm models build [--imagebind PTH [--imagebind-config JSON]]
                   [--llama-dir DIR [--llama-type 7B] --adapter PTH [--knn INDEX]] --out REPO
                   [--dtype fp32|fp16] [--quantize int8|int4] [--kv-dtype float32|float16]
                   [--external-data auto|always|never] [--version V]

Builds a model repository straight from the official checkpoint files (no Python):
  imagebind-vision/, imagebind-audio/, imagebind-text/, imagebind-point/
                   ImageBind encoders (with --imagebind; --dtype fp16 stores their weights as float16)
  bind/            bind network (adapter checkpoint)
  llama-decoder/   LLaMA with the per-layer visual injection (+ visual.onnx for the offsets)
  tokenizer/       the LLaMA SentencePiece model
  knn-cache/       the visual cache vectors (with --knn)
--dtype fp16 halves the files (onnxruntime's CPU provider widens them back to float32 at load);
--quantize int8|int4 stores linear layers block-quantized for MatMulNBits (CPU deployments).
--kv-dtype float16 makes the decoder's slot KV cache half-size (512 KiB per position on 7B instead
of 1 MiB; for GPU deployments, where the WebGPU provider keeps it on the device); float32 is exact.
The released adapter was trained on 7B_chinese (MODEL_SPEC B1): pass --llama-type 7B_chinese for real weights.`;

export async function modelsBuild(argv: string[], log: (line: string) => void): Promise<void> {
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
  const format: WeightFormat = values.quantize ?? (values.dtype === 'fp16' ? 'fp16' : 'fp32');
  const out = requireString(values, 'out');
  const language = values.adapter !== undefined || values['llama-dir'] !== undefined;
  if (!language && values.imagebind === undefined) {
    throw new CliError('nothing to build: pass --imagebind PTH and/or --llama-dir DIR --adapter PTH');
  }
  const started = Date.now();
  const written: { component: string; dir: string; bytes: number }[] = [];
  if (values.imagebind !== undefined) {
    written.push(
      ...(await buildEncoderRepository({
        imagebind: values.imagebind,
        ...(values['imagebind-config'] === undefined ? {} : { imagebindConfig: values['imagebind-config'] }),
        out,
        version: values.version ?? '1',
        externalData: external,
        format: values.dtype === 'fp16' ? 'fp16' : 'fp32',
        onProgress: (m) => log(m),
      })),
    );
  }
  if (language) {
    const summary = await buildLanguageRepository({
      adapter: requireString(values, 'adapter'),
      llamaDir: requireString(values, 'llama-dir'),
      llamaType: values['llama-type'] ?? '7B',
      ...(values.knn === undefined ? {} : { knn: values.knn }),
      out,
      version: values.version ?? '1',
      externalData: external,
      format,
      kvDtype,
      onProgress: (m) => log(m),
    });
    written.push(...summary.components);
  }
  for (const c of written) log(`wrote ${c.component} → ${c.dir} (${(c.bytes / 1024 ** 2).toFixed(1)} MiB)`);
  log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
