import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { float32Tensor, readNpy, toFloat32, writeNpy } from '@imagebind-llm/checkpoint';
import { CACHE_DEFAULTS, CACHE_LIMITS, GENERATION_DEFAULTS, GENERATION_LIMITS } from '@imagebind-llm/domain';
import { LanguagePipeline, type AnswerResult } from '@imagebind-llm/inference';
import { CliError, optionalInRange, requireString } from '../cli-error';
import { dumpEncoded, embedLocally } from './embed.command';
import { collectInputs, INPUT_OPTIONS, INPUTS_USAGE } from './inputs';
import { PROVIDER_OPTIONS, providerPreference, PROVIDERS_HELP, PROVIDERS_USAGE } from '../providers';

export const GENERATE_USAGE = `ibllm generate --models REPO (--embedding FUSED.npy | ${INPUTS_USAGE}) --prompt TEXT [--input TEXT]
               [--temperature T] [--top-p P] [--max-new-tokens N] [--seed S]
               [--cache on|off] [--cache-size K] [--cache-t T] [--cache-weight W] [--json] [--dump DIR]
               ${PROVIDERS_USAGE}

Answers PROMPT about raw inputs (encoded and fused as \`ibllm embed\` does) or about the fused
ImageBind query in FUSED.npy (1024 float32 values): visual cache →
bind network → LLaMA with the per-layer visual injection. Defaults are the official ones:
temperature ${GENERATION_DEFAULTS.temperature} (0 = greedy), top-p ${GENERATION_DEFAULTS.topP}, ${GENERATION_DEFAULTS.maxNewTokens} new tokens, cache on with size ${CACHE_DEFAULTS.size}, t ${CACHE_DEFAULTS.temperature}, weight ${CACHE_DEFAULTS.weight}
(the cache is on when the repository has a knn-cache component).

${PROVIDERS_HELP}`;

export interface Output {
  out: (text: string) => void;
  log: (line: string) => void;
}

function dumpAll(dir: string, fused: Float32Array, r: AnswerResult, layers: number, dim: number): void {
  mkdirSync(dir, { recursive: true });
  const f32 = (name: string, values: Float32Array, shape: number[]): void =>
    writeNpy(join(dir, name), float32Tensor(values, shape));
  f32('fused.npy', fused, [fused.length]);
  if (r.cached !== undefined) f32('cached.npy', r.cached, [r.cached.length]);
  f32('visual_query.npy', r.visualQuery, [r.visualQuery.length]);
  f32('layer_offsets.npy', r.layerOffsets, [layers, dim]);
  if (r.generation.prefillLogits !== undefined)
    f32('prefill_logits.npy', r.generation.prefillLogits, [r.generation.prefillLogits.length]);
  writeFileSync(
    join(dir, 'tokens.json'),
    `${JSON.stringify({ prompt_ids: r.promptIds, generated_ids: r.generation.tokenIds, text: r.text }, null, 2)}\n`,
  );
}

export async function generate(argv: string[], io: Output): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      models: { type: 'string' },
      embedding: { type: 'string' },
      prompt: { type: 'string' },
      input: { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      'max-new-tokens': { type: 'string' },
      seed: { type: 'string' },
      cache: { type: 'string' },
      'cache-size': { type: 'string' },
      'cache-t': { type: 'string' },
      'cache-weight': { type: 'string' },
      json: { type: 'boolean', default: false },
      dump: { type: 'string' },
      ...PROVIDER_OPTIONS,
      ...INPUT_OPTIONS,
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    io.log(GENERATE_USAGE);
    return;
  }
  const repo = requireString(values, 'models');
  const inputs = collectInputs(values);
  if (inputs.length > 0 && values.embedding !== undefined)
    throw new CliError('give either raw inputs or --embedding, not both');
  if (inputs.length === 0 && values.embedding === undefined) {
    throw new CliError(
      'give the inputs (--image, --video, --audio, --text, --point) or a fused query with --embedding',
    );
  }
  const prompt = requireString(values, 'prompt');
  const providers = providerPreference(values);
  if (values.cache !== undefined && values.cache !== 'on' && values.cache !== 'off') {
    throw new CliError(`--cache must be on or off, got ${JSON.stringify(values.cache)}`);
  }
  // The ranges every entry point shares (libs/domain generation.ts).
  const number = (name: string, range: Parameters<typeof optionalInRange>[2]): number | undefined =>
    optionalInRange(values, name, range);
  const temperature = number('temperature', GENERATION_LIMITS.temperature);
  const topP = number('top-p', GENERATION_LIMITS.topP);
  const maxNewTokens = number('max-new-tokens', GENERATION_LIMITS.maxNewTokens);
  const cacheSize = number('cache-size', CACHE_LIMITS.size);
  const cacheT = number('cache-t', CACHE_LIMITS.temperature);
  const cacheWeight = number('cache-weight', CACHE_LIMITS.weight);
  const seedNumber = number('seed', GENERATION_LIMITS.seed);
  const seed = seedNumber === undefined ? undefined : BigInt(seedNumber);

  let fused: Float32Array;
  let encoderProviders: Record<string, string> = {};
  if (values.embedding !== undefined) {
    const npy = readNpy(values.embedding);
    fused = toFloat32(npy);
    if (npy.shape.filter((d) => d !== 1).length > 1) {
      throw new CliError(
        `${values.embedding}: expected one fused query (shape [1024] or [1, 1024]), got [${npy.shape.join(', ')}]`,
      );
    }
  } else {
    const embedded = await embedLocally(repo, inputs, {
      providers,
      withPreprocessed: values.dump !== undefined,
    });
    if (values.dump !== undefined) dumpEncoded(values.dump, embedded.encoded, embedded.fused);
    fused = embedded.fused;
    encoderProviders = embedded.providers;
  }

  const pipeline = await LanguagePipeline.load(repo, { providers });
  try {
    const cacheOn = values.cache === undefined ? pipeline.hasCache : values.cache === 'on';
    if (values.cache === undefined && !pipeline.hasCache)
      io.log('note: the repository has no knn-cache component; the visual cache is off');
    const streaming = !values.json;
    const answerStarted = performance.now();
    const result = await pipeline.answer({
      fused,
      instruction: prompt,
      ...(values.input === undefined ? {} : { input: values.input }),
      cache: {
        enabled: cacheOn,
        size: cacheSize ?? CACHE_DEFAULTS.size,
        temperature: cacheT ?? CACHE_DEFAULTS.temperature,
        weight: cacheWeight ?? CACHE_DEFAULTS.weight,
      },
      ...(temperature === undefined ? {} : { temperature }),
      ...(topP === undefined ? {} : { topP }),
      ...(maxNewTokens === undefined ? {} : { maxNewTokens }),
      ...(seed === undefined ? {} : { seed }),
      wantPrefillLogits: values.dump !== undefined,
      onText: (delta) => {
        if (streaming) io.out(delta);
      },
    });
    if (values.dump !== undefined)
      dumpAll(values.dump, fused, result, pipeline.shape.nLayers, pipeline.shape.dim);
    const g = result.generation;
    // Decode speed after the first token (the prefill and the visual offsets are in the first).
    const decodeMs = performance.now() - answerStarted - g.timeToFirstTokenMs;
    const tokensPerSecond =
      g.tokenIds.length > 1 && decodeMs > 0 ? (g.tokenIds.length - 1) / (decodeMs / 1000) : 0;
    if (values.json) {
      io.out(
        `${JSON.stringify({
          text: result.text.trim(),
          prompt_ids: result.promptIds,
          generated_ids: g.tokenIds,
          finish_reason: g.finishReason,
          seed: result.seed.toString(),
          cache:
            result.neighbours === undefined
              ? null
              : { ids: result.neighbours.map((n) => n.id), scores: result.neighbours.map((n) => n.score) },
          time_to_first_token_ms: Math.round(g.timeToFirstTokenMs),
          tokens_per_second: Number(tokensPerSecond.toFixed(3)),
          // the provider each session runs on first, and where the decoder keeps its KV cache
          providers: { ...encoderProviders, ...pipeline.providers },
          kv_cache: pipeline.engine.stateLocation,
        })}\n`,
      );
    } else {
      io.out('\n');
      io.log(
        `[${g.tokenIds.length} tokens, finish: ${g.finishReason}, seed ${result.seed}, first token after ${g.timeToFirstTokenMs.toFixed(0)} ms]`,
      );
    }
  } finally {
    await pipeline.close();
  }
}
