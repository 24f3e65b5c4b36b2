import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { float32Tensor, readNpy, toFloat32, writeNpy } from '@imagebind-llm/checkpoint';
import { CACHE_DEFAULTS, CACHE_LIMITS, GENERATION_DEFAULTS, GENERATION_LIMITS } from '@imagebind-llm/domain';
import { InThreadPreprocessor } from '@imagebind-llm/inference';
import { ServiceMetrics } from '@imagebind-llm/observability';
import { gatewayV1 } from '@imagebind-llm/proto';
import { answer, createLocalBackends, type AnswerIntermediates } from '@imagebind-llm/serving';
import { CliError, optionalInRange, requireString } from '../cli-error';
import {
  dumpEncoded,
  embedWith,
  encodersFor,
  ONE_SHOT_ENCODER_LIMITS,
  oneShotContext,
} from './embed.command';
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

/** The answer's steps as .npy files and tokens.json (the golden files' names). */
function dumpAll(
  dir: string,
  fused: Float32Array,
  steps: AnswerIntermediates,
  generatedIds: readonly number[],
  text: string,
): void {
  mkdirSync(dir, { recursive: true });
  const f32 = (name: string, values: Float32Array | undefined, shape: number[]): void => {
    if (values !== undefined) writeNpy(join(dir, name), float32Tensor(values, shape));
  };
  const layers = (steps.layerOffsets?.length ?? 0) / (steps.visualQuery?.length ?? 1);
  f32('fused.npy', fused, [fused.length]);
  f32('cached.npy', steps.cached, [steps.cached?.length ?? 0]);
  f32('visual_query.npy', steps.visualQuery, [steps.visualQuery?.length ?? 0]);
  f32('layer_offsets.npy', steps.layerOffsets, [layers, steps.visualQuery?.length ?? 0]);
  f32('prefill_logits.npy', steps.prefillLogits, [steps.prefillLogits?.length ?? 0]);
  writeFileSync(
    join(dir, 'tokens.json'),
    `${JSON.stringify({ prompt_ids: steps.promptIds, generated_ids: generatedIds, text }, null, 2)}\n`,
  );
}

/** The CLI's names for the gateway's finish reasons (the engine's: the EOS token, the budget, the context). */
const FINISH_NAMES: Partial<Record<gatewayV1.FinishReason, string>> = {
  [gatewayV1.FinishReason.FINISH_REASON_STOP]: 'eos',
  [gatewayV1.FinishReason.FINISH_REASON_LENGTH]: 'length',
  [gatewayV1.FinishReason.FINISH_REASON_CONTEXT]: 'context',
};

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
  const seed = number('seed', GENERATION_LIMITS.seed);

  let given: Float32Array | undefined;
  if (values.embedding !== undefined) {
    const npy = readNpy(values.embedding);
    if (npy.shape.filter((d) => d !== 1).length > 1) {
      throw new CliError(
        `${values.embedding}: expected one fused query (shape [1024] or [1, 1024]), got [${npy.shape.join(', ')}]`,
      );
    }
    given = toFloat32(npy);
  }
  const modalities = encodersFor(repo, inputs);
  const ctx = oneShotContext();

  // Standalone serving's in-process services and orchestration, with the encoders the inputs need
  // and an exact visual cache (faiss IndexFlatIP, as the official code searches knn.index).
  const backends = await createLocalBackends(
    {
      modelRepo: repo,
      preprocessing: new InThreadPreprocessor(),
      decoderMaxBatch: 1,
      providers,
      modalities,
      encoderLimits: ONE_SHOT_ENCODER_LIMITS,
      store: { exactBelow: Number.POSITIVE_INFINITY },
    },
    ctx.logger,
    new ServiceMetrics('ibllm'),
  );
  try {
    let fused: Float32Array;
    if (given !== undefined) {
      fused = given;
    } else {
      const embedded = await embedWith(backends, repo, inputs, values.dump !== undefined);
      if (values.dump !== undefined) dumpEncoded(values.dump, embedded.encoded, embedded.fused);
      fused = embedded.fused;
    }
    const hasCache = backends.info.cachePoints > 0;
    const cacheOn = values.cache === undefined ? hasCache : values.cache === 'on';
    if (values.cache === undefined && !hasCache)
      io.log('note: the repository has no knn-cache component; the visual cache is off');
    if (cacheOn && !hasCache) {
      throw new CliError(
        'the model repository has no knn-cache component; build it with --knn or use --cache off',
      );
    }
    const streaming = !values.json;
    const steps: AnswerIntermediates = {};
    const generatedIds: number[] = [];
    let text = '';
    let last: gatewayV1.GenerateResponse | undefined;
    const stream = answer(
      backends,
      {
        query: fused,
        instruction: prompt,
        input: values.input ?? '',
        cache: {
          enabled: cacheOn,
          size: cacheSize ?? CACHE_DEFAULTS.size,
          temperature: cacheT ?? CACHE_DEFAULTS.temperature,
          weight: cacheWeight ?? CACHE_DEFAULTS.weight,
        },
        sampling: {
          ...(temperature === undefined ? {} : { temperature }),
          ...(topP === undefined ? {} : { topP }),
          ...(seed === undefined ? {} : { seed }),
        },
        stopping: maxNewTokens === undefined ? undefined : { maxNewTokens },
      },
      ctx,
      { resumeAttempts: 0, ...(values.json || values.dump !== undefined ? { intermediates: steps } : {}) },
    );
    for await (const message of stream) {
      generatedIds.push(...message.tokenIds);
      text += message.text;
      if (streaming) io.out(message.text);
      last = message;
    }
    const usage = last?.usage;
    const finishReason = FINISH_NAMES[last?.finishReason ?? gatewayV1.FinishReason.FINISH_REASON_UNSPECIFIED];
    if (usage === undefined || finishReason === undefined)
      throw new CliError('the decoder stream ended without a finish reason');
    if (values.dump !== undefined) dumpAll(values.dump, fused, steps, generatedIds, text);
    if (values.json) {
      io.out(
        `${JSON.stringify({
          text: text.trim(),
          prompt_ids: steps.promptIds,
          generated_ids: generatedIds,
          finish_reason: finishReason,
          seed: String(usage.seed),
          cache:
            steps.neighbours === undefined
              ? null
              : { ids: steps.neighbours.map((n) => n.id), scores: steps.neighbours.map((n) => n.score) },
          time_to_first_token_ms: Math.round(usage.timeToFirstTokenMs),
          tokens_per_second: Number(usage.tokensPerSecond.toFixed(3)),
          // the provider each session runs on first, where the decoder keeps its KV cache and
          // what its decode steps run (`step`: model.step.onnx on a device)
          providers: backends.info.providers,
          kv_cache: backends.info.kvCache,
          decode_steps: backends.info.decodeSteps,
        })}\n`,
      );
    } else {
      io.out('\n');
      io.log(
        `[${generatedIds.length} tokens, finish: ${finishReason}, seed ${usage.seed}, first token after ${usage.timeToFirstTokenMs.toFixed(0)} ms]`,
      );
    }
  } finally {
    await backends.close();
  }
}
