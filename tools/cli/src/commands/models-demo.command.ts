import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  buildEncoderRepository,
  buildLanguageRepository,
  writeDemoCheckpoints,
} from '@imagebind-llm/model-builder';
import { CliError, requireString } from '../cli-error';

export const MODELS_DEMO_USAGE = `ibllm models demo --out REPO [--seed S] [--keep-checkpoints DIR] [--version V]

Writes tiny RANDOM-WEIGHT checkpoints in the official file formats (imagebind_w3D.pth,
7B.pth, llama/7B/consolidated.00.pth + params.json, tokenizer.model, knn.index) with this
project's own generator, then builds a complete model repository from them, exactly as
\`ibllm models build\` would. Needs no downloads: use it to try the pipeline end to end.
The answers of a demo repository are meaningless text. --keep-checkpoints DIR keeps the
generated checkpoints (otherwise they go to a temporary folder that is removed).`;

const NOTE = `NOTE: these are random weights. Every command works on this repository, but the embeddings
and the generated answers mean nothing. For real answers build from the official checkpoints:
  ibllm models build --imagebind imagebind_w3D.pth --llama-dir LLAMA_DIR --llama-type 7B_chinese \\
    --adapter 7B.pth --knn knn.index --out REPO`;

function parseSeed(text: string | undefined): number {
  if (text === undefined) return 0;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new CliError(`--seed must be a non-negative integer, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

export async function modelsDemo(argv: string[], log: (line: string) => void): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      seed: { type: 'string' },
      'keep-checkpoints': { type: 'string' },
      version: { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    log(MODELS_DEMO_USAGE);
    return;
  }
  const out = requireString(values, 'out');
  const seed = parseSeed(values.seed);
  const version = values.version ?? '1';
  const keep = values['keep-checkpoints'];
  const dir = keep ?? mkdtempSync(join(tmpdir(), 'ibllm-demo-'));
  const started = Date.now();
  try {
    log(`writing random-weight demo checkpoints (seed ${seed}) to ${dir}`);
    const ckpts = await writeDemoCheckpoints(dir, { seed, onProgress: (m) => log(m) });
    const written = await buildEncoderRepository({
      imagebind: ckpts.imagebind,
      imagebindConfig: ckpts.imagebindConfig,
      out,
      version,
      onProgress: (m) => log(m),
    });
    const summary = await buildLanguageRepository({
      adapter: ckpts.adapter,
      llamaDir: ckpts.llamaDir,
      llamaType: ckpts.llamaType,
      knn: ckpts.knn,
      out,
      version,
      onProgress: (m) => log(m),
    });
    written.push(...summary.components);
    for (const c of written) log(`wrote ${c.component} → ${c.dir} (${(c.bytes / 1024 ** 2).toFixed(1)} MiB)`);
    const l = summary.llama;
    log(
      `demo model: ImageBind dims ${ckpts.config.imagebind.vision_embed_dim}, LLaMA dim ${l.dim} / ${l.nLayers} layers / ${l.nHeads} heads, vocabulary ${l.vocabSize} pieces, ${ckpts.tokenizerSummary.merges} merges`,
    );
    if (keep !== undefined) log(`checkpoints kept in ${dir}`);
    log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    log(NOTE);
  } finally {
    if (keep === undefined) rmSync(dir, { recursive: true, force: true });
  }
}
