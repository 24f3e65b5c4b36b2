import { randomInt } from 'node:crypto';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  abortReason,
  float32Tensor,
  readFloat32Tensor,
  type CallContext,
  type ServiceHandlers,
} from '@imagebind-llm/grpc-kit';
import { describeLimit, GENERATION_DEFAULTS, GENERATION_LIMITS, inLimit } from '@imagebind-llm/domain';
import type { FinishReason, GeneratedToken } from '@imagebind-llm/inference';
import { getTracer, type InferenceMetrics, type Span } from '@imagebind-llm/observability';
import { commonV1, decoderV1 } from '@imagebind-llm/proto';
import { formatPrompt } from '@imagebind-llm/tokenizer';
import { DECODER_COMPONENT, type DecoderRuntime, type DecoderStatus } from './decoder-runtime';
import { MessageChannel } from './message-channel';

export interface DecoderServiceOptions {
  /**
   * Largest max_new_tokens a request may ask for (resumed tokens count in it); default and ceiling
   * GENERATION_LIMITS.maxNewTokens.max (the context).
   */
  readonly maxNewTokensLimit?: number;
  /** Longest text (UTF-16 code units) Tokenize accepts; default 100 000, far past any 512-token prompt. */
  readonly maxTokenizeChars?: number;
  /** Decoder series (TTFT, tokens, tokens/s, active sequences, free KV); none when unset. */
  readonly metrics?: InferenceMetrics;
}

/** A Generate request after validation, in the engine's terms. */
interface GenerationPlan {
  readonly visualQuery: Float32Array;
  readonly promptIds: number[];
  readonly resumeIds: number[];
  readonly temperature: number;
  readonly topP: number;
  readonly seed: number;
  readonly maxNewTokens: number;
  readonly ignoreEos: boolean;
  readonly wantPrefillLogits: boolean;
  readonly wantLayerOffsets: boolean;
  /** Most tokens the sequence can hold (max_new_tokens, capped by the context). */
  readonly budget: number;
}

type Outcome = 'ok' | 'invalid' | 'overloaded' | 'cancelled' | 'expired' | 'failed';

const FINISH_REASONS: Readonly<Record<Exclude<FinishReason, 'cancelled'>, decoderV1.FinishReason>> = {
  eos: decoderV1.FinishReason.FINISH_REASON_EOS,
  length: decoderV1.FinishReason.FINISH_REASON_LENGTH,
  context: decoderV1.FinishReason.FINISH_REASON_CONTEXT,
};

/** The `outcome` label of ibllm_inference_requests_total for each domain error code. */
const OUTCOME_BY_CODE = {
  INVALID_INPUT: 'invalid',
  UNSUPPORTED_MEDIA: 'invalid',
  PAYLOAD_TOO_LARGE: 'invalid',
  CONTEXT_OVERFLOW: 'invalid',
  NOT_FOUND: 'invalid',
  ALREADY_EXISTS: 'invalid',
  FAILED_PRECONDITION: 'invalid',
  UNAUTHENTICATED: 'invalid',
  PERMISSION_DENIED: 'invalid',
  OVERLOADED: 'overloaded',
  RATE_LIMITED: 'overloaded',
  MODEL_NOT_READY: 'overloaded',
  DEPENDENCY_UNAVAILABLE: 'failed',
  DEADLINE_EXCEEDED: 'expired',
  CANCELLED: 'cancelled',
  NOT_IMPLEMENTED: 'failed',
  INTERNAL: 'failed',
} as const satisfies Record<ErrorCode, Outcome>;

function outcomeOf(error: unknown): Outcome {
  return error instanceof DomainError ? OUTCOME_BY_CODE[error.code] : 'failed';
}

/** Runs `fn` and hands back its result, or its throw, as a promise (for synchronous handlers). */
async function settle<T>(fn: () => T): Promise<T> {
  return new Promise<T>((resolve) => resolve(fn()));
}

/**
 * DecoderService (proto imagebind.decoder.v1) over a DecoderRuntime: validates requests, turns the
 * visual query into per-layer offsets, and streams each token the moment the engine samples it
 * (with the text it adds, from an incremental detokenizer), then a final message with the finish
 * reason and stats. Hosted by services/decoder and, in process, by standalone mode and the
 * gateway, which call `handlers()` with a CallContext of their own.
 *
 * The runtime is attached after the model has loaded and warmed up; until then Generate and
 * Tokenize answer UNAVAILABLE (MODEL_NOT_READY) and GetModelStatus reports LOADING.
 */
export class DecoderServiceImpl {
  private current: DecoderRuntime | undefined;
  private unwatch: (() => void) | undefined;
  private readonly maxNewTokensLimit: number;
  private readonly maxTokenizeChars: number;

  constructor(
    runtime?: DecoderRuntime,
    private readonly options: DecoderServiceOptions = {},
  ) {
    this.maxNewTokensLimit = options.maxNewTokensLimit ?? GENERATION_LIMITS.maxNewTokens.max;
    this.maxTokenizeChars = options.maxTokenizeChars ?? 100_000;
    if (!Number.isInteger(this.maxNewTokensLimit) || this.maxNewTokensLimit < 1) {
      throw new RangeError(`maxNewTokensLimit must be a positive integer, got ${this.maxNewTokensLimit}`);
    }
    if (runtime !== undefined) this.attach(runtime);
  }

  /** Serves `runtime` from now on (once it has loaded and warmed up). */
  attach(runtime: DecoderRuntime): void {
    this.unwatch?.();
    this.current = runtime;
    this.publish(runtime.status());
    this.unwatch = runtime.watch((s) => this.publish(s));
  }

  get runtime(): DecoderRuntime | undefined {
    return this.current;
  }

  handlers(): ServiceHandlers<typeof decoderV1.DecoderServiceService> {
    return {
      generate: (request, ctx) => this.generate(request, ctx),
      tokenize: (request) => settle(() => this.tokenize(request)),
      getModelStatus: () => settle(() => this.modelStatus()),
    };
  }

  /** Streams one sequence: a message per token, then the final message (finish reason + stats). */
  async *generate(
    request: decoderV1.GenerateRequest,
    ctx: Pick<CallContext, 'signal' | 'logger' | 'trace'>,
  ): AsyncGenerator<decoderV1.GenerateResponse, void, undefined> {
    const arrival = performance.now();
    // Stays 'cancelled' when the consumer stops reading before the end (the generator is returned).
    let outcome: Outcome = 'cancelled';
    try {
      const runtime = this.requireRuntime();
      const plan = this.plan(request, runtime);
      for await (const message of this.stream(plan, runtime, ctx, arrival)) {
        // Counted at the final message, not after it: consumers (the gateway) stop reading as soon
        // as they have it, and the generator is then returned without running past the yield.
        if (message.finishReason !== decoderV1.FinishReason.FINISH_REASON_UNSPECIFIED) outcome = 'ok';
        yield message;
      }
    } catch (error) {
      outcome = outcomeOf(error);
      throw error;
    } finally {
      this.options.metrics?.requests.inc({ model: DECODER_COMPONENT, outcome });
    }
  }

  /** Encodes text with the LLaMA tokenizer, in the Alpaca template (MODEL_SPEC §5.9) or raw. */
  tokenize(request: decoderV1.TokenizeRequest): decoderV1.TokenizeResponse {
    const runtime = this.requireRuntime();
    const chars = request.text.length + request.input.length;
    if (chars > this.maxTokenizeChars) {
      throw new DomainError(
        ErrorCode.PayloadTooLarge,
        `the instruction and input text hold ${chars} characters; at most ${this.maxTokenizeChars} ` +
          'are accepted: shorten them',
        { field: 'text' },
      );
    }
    let prompt: string;
    switch (request.template) {
      case decoderV1.PromptTemplate.PROMPT_TEMPLATE_UNSPECIFIED:
      case decoderV1.PromptTemplate.PROMPT_TEMPLATE_ALPACA:
        prompt = formatPrompt(request.text, request.input);
        break;
      case decoderV1.PromptTemplate.PROMPT_TEMPLATE_RAW:
        if (request.input !== '') {
          throw DomainError.invalidInput(
            'input: the raw template has no input section; put all text in `text` or use PROMPT_TEMPLATE_ALPACA',
            'input',
          );
        }
        prompt = request.text;
        break;
      case decoderV1.PromptTemplate.UNRECOGNIZED:
      default:
        throw DomainError.invalidInput(
          `template: unknown prompt template ${String(request.template)}; use PROMPT_TEMPLATE_ALPACA or PROMPT_TEMPLATE_RAW`,
          'template',
        );
    }
    return { tokenIds: runtime.tokenizer.encode(prompt, { bos: request.addBos }), prompt };
  }

  /** The decoder component's state, running sequences and free KV positions. */
  modelStatus(): decoderV1.GetModelStatusResponse {
    const runtime = this.current;
    if (runtime === undefined) {
      return {
        models: [
          {
            model: { name: DECODER_COMPONENT, version: '' },
            state: commonV1.ModelState.MODEL_STATE_LOADING,
            executionProvider: '',
            sourceSha256: '',
            message: 'the decoder model is loading and warming up',
          },
        ],
        activeSequences: 0,
        freeKvPositions: 0,
      };
    }
    const s = runtime.status();
    const { info } = runtime;
    const state =
      s.state === 'ready'
        ? commonV1.ModelState.MODEL_STATE_READY
        : s.state === 'failed'
          ? commonV1.ModelState.MODEL_STATE_FAILED
          : commonV1.ModelState.MODEL_STATE_LOADING;
    return {
      models: [
        {
          model: { name: info.name, version: info.version },
          state,
          executionProvider: info.executionProvider,
          sourceSha256: info.sourceSha256,
          message:
            s.state === 'failed'
              ? 'a decoder session failed; the replica is restarting'
              : `${s.waiting} requests waiting; KV budget ${s.kvBudgetPositions} positions`,
        },
      ],
      activeSequences: s.activeSequences,
      freeKvPositions: s.freeKvPositions,
    };
  }

  private requireRuntime(): DecoderRuntime {
    if (this.current === undefined) {
      throw new DomainError(ErrorCode.ModelNotReady, 'the decoder model is still loading; retry shortly', {
        retryAfterMs: 1_000,
      });
    }
    return this.current;
  }

  private publish(s: DecoderStatus): void {
    const m = this.options.metrics;
    if (m === undefined) return;
    const labels = { model: DECODER_COMPONENT };
    m.activeSequences.set(labels, s.activeSequences);
    m.freeKvPositions.set(labels, s.freeKvPositions);
    m.queueDepth.set(labels, s.waiting);
  }

  /** Checks every field before any work is done; each error names the field to fix. */
  private plan(req: decoderV1.GenerateRequest, runtime: DecoderRuntime): GenerationPlan {
    const { shape, info } = runtime;
    const name = req.model?.name ?? '';
    const version = req.model?.version ?? '';
    if ((name !== '' && name !== info.name) || (version !== '' && version !== info.version)) {
      throw DomainError.notFound(
        `model ${name || info.name}${version === '' ? '' : `@${version}`} is not served here; ` +
          `this replica serves ${info.name}@${info.version} (leave model empty for it)`,
      );
    }
    const { data: visualQuery, shape: vShape } = readFloat32Tensor(req.visualQuery, 'visual_query', {
      lastDim: shape.dim,
    });
    if (!(vShape.length === 1 || (vShape.length === 2 && vShape[0] === 1))) {
      throw DomainError.invalidInput(
        `visual_query: expected shape [${shape.dim}] or [1, ${shape.dim}], got [${vShape.join(', ')}]`,
        'visual_query',
      );
    }
    const promptIds = req.promptTokenIds;
    if (promptIds.length === 0) {
      throw DomainError.invalidInput(
        'prompt_token_ids: empty; send at least the BOS token (Tokenize with add_bos returns it)',
        'prompt_token_ids',
      );
    }
    checkIds(promptIds, shape.vocabSize, 'prompt_token_ids');
    if (promptIds.length >= shape.maxSeqLen) {
      // MODEL_SPEC B16: at least one answer token must fit the context.
      throw new DomainError(
        ErrorCode.ContextOverflow,
        `prompt_token_ids: ${promptIds.length} tokens; the prompt must be shorter than the ` +
          `${shape.maxSeqLen}-token context so an answer fits`,
        { field: 'prompt_token_ids' },
      );
    }
    const resumeIds = req.resumeFromTokenIds;
    checkIds(resumeIds, shape.vocabSize, 'resume_from_token_ids');
    const maxNewTokens =
      req.stopping?.maxNewTokens ?? Math.min(GENERATION_DEFAULTS.maxNewTokens, this.maxNewTokensLimit);
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1 || maxNewTokens > this.maxNewTokensLimit) {
      throw DomainError.invalidInput(
        `stopping.max_new_tokens: must be 1..${this.maxNewTokensLimit}, got ${maxNewTokens}`,
        'stopping.max_new_tokens',
      );
    }
    const ignoreEos = req.stopping?.ignoreEos ?? false;
    // The official total_len = min(max_seq_len, max_gen_len + prompt_len) (MODEL_SPEC §5.7).
    const budget = Math.min(maxNewTokens, shape.maxSeqLen - promptIds.length);
    if (resumeIds.length >= budget) {
      throw DomainError.invalidInput(
        `resume_from_token_ids: ${resumeIds.length} tokens already fill this sequence's budget of ${budget} ` +
          '(max_new_tokens and the context); nothing is left to generate',
        'resume_from_token_ids',
      );
    }
    if (!ignoreEos && resumeIds.includes(shape.eosId)) {
      throw DomainError.invalidInput(
        'resume_from_token_ids: contains the EOS token, so the sequence has already finished',
        'resume_from_token_ids',
      );
    }
    const temperature = req.sampling?.temperature ?? GENERATION_DEFAULTS.temperature;
    if (!inLimit(temperature, GENERATION_LIMITS.temperature)) {
      throw DomainError.invalidInput(
        `sampling.temperature: must be ${describeLimit(GENERATION_LIMITS.temperature)} (0 is greedy), got ${temperature}`,
        'sampling.temperature',
      );
    }
    // top_p 0 keeps only the most likely token (MODEL_SPEC §5.8).
    const topP = req.sampling?.topP ?? GENERATION_DEFAULTS.topP;
    if (!inLimit(topP, GENERATION_LIMITS.topP)) {
      throw DomainError.invalidInput(
        `sampling.top_p: must be ${describeLimit(GENERATION_LIMITS.topP)}, got ${topP}`,
        'sampling.top_p',
      );
    }
    // randomInt needs max − min < 2^48.
    const seed = req.sampling?.seed ?? randomInt(0, 2 ** 48 - 1);
    if (!inLimit(seed, GENERATION_LIMITS.seed)) {
      throw DomainError.invalidInput(
        `sampling.seed: must be ${describeLimit(GENERATION_LIMITS.seed)}, got ${seed}`,
        'sampling.seed',
      );
    }
    return {
      visualQuery,
      promptIds,
      resumeIds,
      temperature,
      topP,
      seed,
      maxNewTokens,
      ignoreEos,
      wantPrefillLogits: req.returnPrefillLogits,
      wantLayerOffsets: req.returnLayerOffsets,
      budget,
    };
  }

  private async *stream(
    plan: GenerationPlan,
    runtime: DecoderRuntime,
    ctx: Pick<CallContext, 'signal' | 'logger' | 'trace'>,
    arrival: number,
  ): AsyncGenerator<decoderV1.GenerateResponse, void, undefined> {
    const { shape } = runtime;
    const metrics = this.options.metrics;
    const labels = { model: DECODER_COMPONENT };
    if (ctx.signal.aborted) throw abortReason(ctx.signal);
    // The engine row follows this signal: it aborts with the call, and also when the consumer
    // stops iterating without cancelling (an in-process caller breaking out of its loop).
    const local = new AbortController();
    const onCallAbort = (): void => local.abort(ctx.signal.reason);
    ctx.signal.addEventListener('abort', onCallAbort, { once: true });
    const channel = new MessageChannel<decoderV1.GenerateResponse>();
    local.signal.addEventListener('abort', () => channel.fail(abortReason(local.signal)), { once: true });
    try {
      const layerOffsets = await runtime.layerOffsets(plan.visualQuery);
      if (local.signal.aborted) throw abortReason(local.signal);

      // Prime the detokenizer with the resumed tokens, so the next delta is the text the broken
      // stream would have sent. EOS is a control token and adds no text.
      const detokenizer = runtime.tokenizer.createDetokenizer();
      for (const id of plan.resumeIds) if (id !== shape.eosId) detokenizer.push(id);

      let firstAt: number | undefined;
      let lastAt = 0;
      let newTokens = 0;
      // The engine returns the prefill logits only with its result; when they are asked for (a
      // debugging dump) the token messages are held back so the first one can carry them.
      const held: decoderV1.GenerateResponse[] | undefined = plan.wantPrefillLogits ? [] : undefined;
      // Two spans under the call's: the prefill (waiting for a slot and KV room included) up to the
      // first token, then the token stream.
      const prefillSpan = getTracer().startSpan('decoder.prefill', {
        ...(ctx.trace === undefined ? {} : { parent: ctx.trace }),
        attributes: { 'prompt.tokens': plan.promptIds.length + plan.resumeIds.length },
      });
      let streamSpan: Span | undefined;
      const onToken = (t: GeneratedToken): void => {
        const now = performance.now();
        if (firstAt === undefined) {
          firstAt = now;
          metrics?.timeToFirstTokenSeconds.observe(labels, (now - arrival) / 1000);
          prefillSpan.end();
          streamSpan = getTracer().startSpan('decoder.stream', {
            ...(ctx.trace === undefined ? {} : { parent: ctx.trace }),
          });
        }
        lastAt = now;
        newTokens += 1;
        metrics?.generatedTokens.inc(labels);
        const isEos = t.id === shape.eosId;
        const last = (isEos && !plan.ignoreEos) || t.index + 1 >= plan.budget;
        let text = isEos ? '' : detokenizer.push(t.id);
        // Bytes of a character the sequence never completed go out with its last token.
        if (last) text += detokenizer.finish();
        const message: decoderV1.GenerateResponse = {
          tokens: [{ id: t.id, index: t.index, text, logprob: t.logprob ?? 0 }],
          finishReason: decoderV1.FinishReason.FINISH_REASON_UNSPECIFIED,
          ...(plan.wantLayerOffsets && newTokens === 1
            ? { layerOffsets: float32Tensor(layerOffsets, [shape.nLayers, shape.dim]) }
            : {}),
        };
        if (held === undefined) channel.push(message);
        else held.push(message);
      };

      void runtime
        .generate({
          promptIds: plan.promptIds,
          resumeIds: plan.resumeIds,
          layerOffsets,
          sampling: { temperature: plan.temperature, topP: plan.topP, seed: BigInt(plan.seed) },
          maxNewTokens: plan.maxNewTokens,
          ignoreEos: plan.ignoreEos,
          signal: local.signal,
          onToken,
          wantPrefillLogits: plan.wantPrefillLogits,
          logprobs: true,
        })
        .then(
          (result) => {
            const spans = streamSpan ?? prefillSpan;
            spans.setAttribute('finish_reason', result.finishReason);
            spans.setAttribute('generated.tokens', result.tokenIds.length);
            spans.end();
            if (result.finishReason === 'cancelled') {
              channel.fail(abortReason(local.signal));
              return;
            }
            if (held !== undefined) {
              if (held[0] !== undefined && result.prefillLogits !== undefined) {
                held[0].prefillLogits = float32Tensor(result.prefillLogits, [result.prefillLogits.length]);
              }
              for (const m of held) channel.push(m);
            }
            const end = firstAt === undefined ? performance.now() : lastAt;
            const decodeSeconds = firstAt === undefined ? 0 : (end - firstAt) / 1000;
            const tokensPerSecond = newTokens > 1 && decodeSeconds > 0 ? (newTokens - 1) / decodeSeconds : 0;
            if (tokensPerSecond > 0) metrics?.tokensPerSecond.observe(labels, tokensPerSecond);
            const stats: decoderV1.GenerationStats = {
              promptTokens: plan.promptIds.length + plan.resumeIds.length,
              generatedTokens: result.tokenIds.length,
              seed: plan.seed,
              timeToFirstTokenMs: (firstAt ?? end) - arrival,
              tokensPerSecond,
            };
            ctx.logger.info(
              { event: 'generate.finished', finishReason: result.finishReason, ...stats, newTokens },
              'generation finished',
            );
            channel.push({ tokens: [], finishReason: FINISH_REASONS[result.finishReason], stats });
            channel.end();
          },
          (error: unknown) => {
            const spans = streamSpan ?? prefillSpan;
            spans.recordError(error);
            spans.end();
            channel.fail(error);
          },
        );
      yield* channel.drain();
    } finally {
      ctx.signal.removeEventListener('abort', onCallAbort);
      // A no-op after a normal end; otherwise frees the engine row and the KV reservation.
      local.abort(new DomainError(ErrorCode.Cancelled, 'the stream consumer went away'));
    }
  }
}

function checkIds(ids: readonly number[], vocabSize: number, field: string): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw DomainError.invalidInput(
        `${field}[${i}]: token id ${id} is outside the vocabulary [0, ${vocabSize})`,
        field,
      );
    }
  }
}
