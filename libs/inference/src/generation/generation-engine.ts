import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { hostTensor, type HostTensor, type InferenceSessionPort } from '../session.port';
import { pickToken, type SamplingParams } from './sampling';

/** What the engine needs to know about a decoder graph (from model.json). */
export interface DecoderShape {
  readonly nLayers: number;
  readonly nHeads: number;
  readonly headDim: number;
  readonly dim: number;
  readonly vocabSize: number;
  /** Positions available to prompt + answer (512 officially). */
  readonly maxSeqLen: number;
  readonly eosId: number;
}

export type FinishReason = 'eos' | 'length' | 'context' | 'cancelled';

export interface GeneratedToken {
  readonly id: number;
  /** 0-based index among generated tokens (resumed ones included). */
  readonly index: number;
  /** Log-probability under the sampling distribution; with greedy decoding only when `logprobs` is set. */
  readonly logprob?: number;
}

export interface GenerationRequest {
  /** [BOS] + prompt ids. */
  readonly promptIds: readonly number[];
  /** Tokens already generated (and delivered) by an earlier, broken run; generation continues after them. */
  readonly resumeIds?: readonly number[];
  /** c_l for every layer, float32 [nLayers · dim] (zeros: no visual signal). */
  readonly layerOffsets: Float32Array;
  readonly sampling: SamplingParams;
  /** Maximum generated tokens, resumed ones included. */
  readonly maxNewTokens: number;
  /** Keep going after EOS (benchmarks). */
  readonly ignoreEos?: boolean;
  readonly signal?: AbortSignal;
  readonly onToken?: (token: GeneratedToken) => void;
  /** Return the logits of the last prefill position (for --dump). */
  readonly wantPrefillLogits?: boolean;
  /** Report each token's log-probability (a full pass over the vocabulary per greedy token). */
  readonly logprobs?: boolean;
}

export interface GenerationResult {
  /** Generated ids, resumed ones included; ends with the EOS id when it stopped on EOS. */
  readonly tokenIds: number[];
  readonly finishReason: FinishReason;
  readonly prefillLogits?: Float32Array;
  readonly promptTokens: number;
  /** Milliseconds from submission to the first new token. */
  readonly timeToFirstTokenMs: number;
}

interface Row {
  readonly req: GenerationRequest;
  readonly resolve: (r: GenerationResult) => void;
  readonly reject: (e: unknown) => void;
  readonly submitted: number;
  /** Per layer: keys and values [heads, len, hd]. */
  keys: Float32Array[];
  values: Float32Array[];
  len: number;
  tokens: number[];
  /** Generated so far (resumed included). */
  generated: number[];
  /** Most tokens this row may generate in total (max_new_tokens and the context both applied). */
  budget: number;
  firstTokenAt?: number;
  prefillLogits?: Float32Array;
}

interface BatchState {
  readonly rows: Row[];
  /** Per layer: [rows, heads, width, hd]. */
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  width: number;
  /** Width when the batch was packed; columns from here on were appended by batched steps. */
  readonly packWidth: number;
  /** Valid prefix columns of each row at packing time. */
  readonly prefix: number[];
}

export interface EngineOptions {
  /** Rows decoded together in one step. */
  readonly maxBatch: number;
  /** Padded tokens one batched prefill may hold (batch × longest prompt); 4096 by default. */
  readonly maxPrefillTokens?: number;
}

const NEG_INF = -Infinity;

/**
 * Runs LLaMA generation on a decoder session (MODEL_SPEC §5.7) for many sequences at once:
 * a request is prefilled on its own as soon as it arrives, then joins the batch of rows decoded
 * together one token per step; a row leaves the batch when it hits EOS, its budget, the context
 * end, or its signal aborts. Each row has its own visual offsets and sampling parameters.
 */
export class GenerationEngine {
  private readonly pending: Row[] = [];
  private readonly active: Row[] = [];
  /** The rows being prefilled: in neither list while their prefill runs. */
  private prefilling: Row[] | undefined;
  private running = false;

  constructor(
    private readonly session: InferenceSessionPort,
    private readonly shape: DecoderShape,
    private readonly options: EngineOptions = { maxBatch: 16 },
  ) {}

  /** Rows decoding now and waiting for prefill. */
  get load(): { active: number; pending: number } {
    return { active: this.active.length, pending: this.pending.length };
  }

  async generate(req: GenerationRequest): Promise<GenerationResult> {
    const s = this.shape;
    const resumed = req.resumeIds ?? [];
    if (req.promptIds.length === 0)
      throw DomainError.invalidInput(
        'the prompt is empty: it needs at least the BOS token',
        'prompt_token_ids',
      );
    for (const id of [...req.promptIds, ...resumed]) {
      if (!Number.isInteger(id) || id < 0 || id >= s.vocabSize) {
        throw DomainError.invalidInput(
          `token id ${id} is outside the vocabulary [0, ${s.vocabSize})`,
          'prompt_token_ids',
        );
      }
    }
    if (req.promptIds.length >= s.maxSeqLen) {
      // MODEL_SPEC B16: the official code crashes past 512 and answers "" at exactly 512.
      throw new DomainError(
        ErrorCode.ContextOverflow,
        `the prompt has ${req.promptIds.length} tokens; it must be shorter than the ${s.maxSeqLen}-token context so an answer fits`,
        { field: 'prompt_token_ids' },
      );
    }
    if (req.layerOffsets.length !== s.nLayers * s.dim) {
      throw DomainError.invalidInput(
        `layer offsets must have ${s.nLayers}×${s.dim} values, got ${req.layerOffsets.length}`,
        'visual_query',
      );
    }
    if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 1) {
      throw DomainError.invalidInput(
        `max_new_tokens must be a positive integer, got ${req.maxNewTokens}`,
        'stopping.max_new_tokens',
      );
    }
    // Official total_len = min(512, max_gen_len + prompt_len), counted from the original prompt.
    const budget = Math.min(req.maxNewTokens, s.maxSeqLen - req.promptIds.length);
    const generatedSoFar = [...resumed];
    if (resumed.length >= budget || (!req.ignoreEos && resumed.includes(s.eosId))) {
      throw DomainError.invalidInput(
        'the resumed tokens already complete this sequence; nothing is left to generate',
        'resume_from_token_ids',
      );
    }
    return new Promise<GenerationResult>((resolve, reject) => {
      this.pending.push({
        req,
        resolve,
        reject,
        submitted: performance.now(),
        keys: [],
        values: [],
        len: 0,
        tokens: [...req.promptIds, ...resumed],
        generated: generatedSoFar,
        budget,
      });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    // Start on the next microtask, so requests submitted in the same tick prefill together.
    const start = async (): Promise<void> => {
      await Promise.resolve();
      await this.loop();
    };
    start().then(
      () => {
        this.running = false;
        if (this.pending.length > 0) this.kick();
      },
      (error: unknown) => {
        // A failing session is fatal for every row in flight (ARCHITECTURE §8).
        this.running = false;
        const inFlight = this.prefilling ?? [];
        this.prefilling = undefined;
        this.batch = undefined;
        for (const row of [...inFlight, ...this.pending.splice(0), ...this.active.splice(0)])
          row.reject(error);
      },
    );
  }

  private async loop(): Promise<void> {
    while (this.pending.length > 0 || this.active.length > 0) {
      // Admit waiting requests up to the batch size and prefill them together, within a token budget.
      const admitted: Row[] = [];
      while (this.pending.length > 0 && this.active.length + admitted.length < this.options.maxBatch) {
        const next = this.pending[0]!;
        if (next.req.signal?.aborted === true) {
          this.pending.shift();
          this.finish(next, 'cancelled');
          continue;
        }
        const width = Math.max(next.tokens.length, ...admitted.map((r) => r.tokens.length));
        if (admitted.length > 0 && width * (admitted.length + 1) > (this.options.maxPrefillTokens ?? 4096))
          break;
        admitted.push(this.pending.shift()!);
      }
      if (admitted.length > 0) {
        this.prefilling = admitted;
        await this.prefill(admitted);
        this.prefilling = undefined;
      }
      for (const row of [...this.active]) {
        if (row.req.signal?.aborted === true) this.leave(row, 'cancelled');
      }
      if (this.active.length > 0) await this.step();
    }
  }

  /**
   * Prefills several prompts in one run: right-padded to the longest, each row attending causally
   * to its own tokens only (padding keys are masked; padding queries see the row's real tokens so
   * no softmax row is empty). Each row then keeps the first `len` columns of its KV cache.
   */
  private async prefill(rows: readonly Row[]): Promise<void> {
    const s = this.shape;
    const b = rows.length;
    const t = Math.max(...rows.map((r) => r.tokens.length));
    const ids = new BigInt64Array(b * t);
    const pos = new BigInt64Array(b * t);
    const bias = new Float32Array(b * t * t).fill(NEG_INF);
    const offsets = new Float32Array(b * s.nLayers * s.dim);
    const gather = new BigInt64Array(b);
    rows.forEach((row, i) => {
      const n = row.tokens.length;
      for (let k = 0; k < t; k++) {
        ids[i * t + k] = BigInt(k < n ? row.tokens[k]! : 0);
        pos[i * t + k] = BigInt(k);
      }
      for (let q = 0; q < t; q++) {
        const last = Math.min(q, n - 1);
        for (let k = 0; k <= last; k++) bias[(i * t + q) * t + k] = 0;
      }
      offsets.set(row.req.layerOffsets, i * s.nLayers * s.dim);
      gather[i] = BigInt(i * t + n - 1);
    });
    const feeds: Record<string, HostTensor> = {
      input_ids: hostTensor('int64', [b, t], ids),
      position_ids: hostTensor('int64', [b, t], pos),
      attention_bias: hostTensor('float32', [b, 1, t, t], bias),
      layer_offsets: hostTensor('float32', [b, s.nLayers, s.dim], offsets),
      gather_rows: hostTensor('int64', [b], gather),
    };
    for (let l = 0; l < s.nLayers; l++) {
      feeds[`past_key_${l}`] = hostTensor('float32', [b, s.nHeads, 0, s.headDim], new Float32Array(0));
      feeds[`past_value_${l}`] = hostTensor('float32', [b, s.nHeads, 0, s.headDim], new Float32Array(0));
    }
    const out = await this.session.run(feeds);
    const logits = out['logits']!.data as Float32Array;
    rows.forEach((row, i) => {
      const n = row.tokens.length;
      for (let l = 0; l < s.nLayers; l++) {
        const pk = out[`present_key_${l}`]!.data as Float32Array;
        const pv = out[`present_value_${l}`]!.data as Float32Array;
        row.keys[l] = b === 1 ? pk : this.firstColumns(pk, i, n, t);
        row.values[l] = b === 1 ? pv : this.firstColumns(pv, i, n, t);
      }
      row.len = n;
      const own = logits.subarray(i * s.vocabSize, (i + 1) * s.vocabSize);
      if (row.req.wantPrefillLogits === true) row.prefillLogits = own.slice();
      this.accept(row, own);
      if (this.isDone(row)) this.finish(row, this.reasonOf(row));
      else this.active.push(row);
    });
  }

  /** Row `row`'s first `len` columns of a [batch, heads, width, hd] cache, as [heads, len, hd]. */
  private firstColumns(all: Float32Array, row: number, len: number, width: number): Float32Array {
    const { nHeads: h, headDim: hd } = this.shape;
    const out = new Float32Array(h * len * hd);
    for (let head = 0; head < h; head++) {
      const src = (row * h + head) * width * hd;
      out.set(all.subarray(src, src + len * hd), head * len * hd);
    }
    return out;
  }

  /**
   * The decode batch keeps its KV cache as one [batch, heads, width, hd] tensor per layer from step
   * to step: the present outputs become the next past inputs with no copy. Rows joined with
   * different lengths are left-aligned and padded; row i attends to columns [0, prefix_i) and
   * [packWidth, width). The batch is repacked only when its membership changes.
   */
  private batch: BatchState | undefined;

  private sameMembers(rows: readonly Row[]): boolean {
    const b = this.batch;
    return b !== undefined && b.rows.length === rows.length && b.rows.every((r, i) => r === rows[i]);
  }

  /** Copies a batched row's valid columns out into its own compact cache. */
  private extract(state: BatchState, i: number): void {
    const { nHeads: h, headDim: hd, nLayers } = this.shape;
    const row = state.rows[i]!;
    const prefix = state.prefix[i]!;
    const tail = state.width - state.packWidth;
    const len = prefix + tail;
    const take = (all: Float32Array): Float32Array => {
      const out = new Float32Array(h * len * hd);
      for (let head = 0; head < h; head++) {
        const src = (i * h + head) * state.width * hd;
        const dst = head * len * hd;
        out.set(all.subarray(src, src + prefix * hd), dst);
        out.set(all.subarray(src + state.packWidth * hd, src + state.width * hd), dst + prefix * hd);
      }
      return out;
    };
    for (let l = 0; l < nLayers; l++) {
      row.keys[l] = take(state.keys[l]!);
      row.values[l] = take(state.values[l]!);
    }
    row.len = len;
  }

  private repack(rows: Row[]): void {
    const old = this.batch;
    if (old !== undefined) {
      old.rows.forEach((r, i) => {
        if (rows.includes(r)) this.extract(old, i);
      });
    }
    const { nLayers } = this.shape;
    const width = Math.max(...rows.map((r) => r.len));
    const keys: Float32Array[] = [];
    const values: Float32Array[] = [];
    for (let l = 0; l < nLayers; l++) {
      keys.push(this.pack(rows, (r) => r.keys[l]!, width));
      values.push(this.pack(rows, (r) => r.values[l]!, width));
    }
    for (const r of rows) {
      r.keys = [];
      r.values = [];
    }
    this.batch = { rows, keys, values, width, packWidth: width, prefix: rows.map((r) => r.len) };
  }

  private async step(): Promise<void> {
    const s = this.shape;
    const rows = [...this.active];
    if (!this.sameMembers(rows)) this.repack(rows);
    const state = this.batch!;
    const b = rows.length;
    const total = state.width + 1;
    const ids = new BigInt64Array(b);
    const pos = new BigInt64Array(b);
    const bias = new Float32Array(b * total);
    const offsets = new Float32Array(b * s.nLayers * s.dim);
    rows.forEach((r, i) => {
      ids[i] = BigInt(r.tokens[r.tokens.length - 1]!);
      pos[i] = BigInt(r.len);
      for (let c = state.prefix[i]!; c < state.packWidth; c++) bias[i * total + c] = NEG_INF; // padding
      offsets.set(r.req.layerOffsets, i * s.nLayers * s.dim);
    });
    const feeds: Record<string, HostTensor> = {
      input_ids: hostTensor('int64', [b, 1], ids),
      position_ids: hostTensor('int64', [b, 1], pos),
      attention_bias: hostTensor('float32', [b, 1, 1, total], bias),
      layer_offsets: hostTensor('float32', [b, s.nLayers, s.dim], offsets),
      gather_rows: hostTensor(
        'int64',
        [b],
        BigInt64Array.from({ length: b }, (_, i) => BigInt(i)),
      ),
    };
    for (let l = 0; l < s.nLayers; l++) {
      const dims = [b, s.nHeads, state.width, s.headDim];
      feeds[`past_key_${l}`] = hostTensor('float32', dims, state.keys[l]!);
      feeds[`past_value_${l}`] = hostTensor('float32', dims, state.values[l]!);
    }
    const out = await this.session.run(feeds);
    const logits = out['logits']!.data as Float32Array;
    for (let l = 0; l < s.nLayers; l++) {
      state.keys[l] = out[`present_key_${l}`]!.data as Float32Array;
      state.values[l] = out[`present_value_${l}`]!.data as Float32Array;
    }
    state.width = total;
    rows.forEach((r, i) => {
      r.len += 1;
      this.accept(r, logits.subarray(i * s.vocabSize, (i + 1) * s.vocabSize));
      if (this.isDone(r)) this.leave(r, this.reasonOf(r));
    });
    if (this.active.length === 0) this.batch = undefined;
  }

  /** Packs rows' caches [heads, len, hd] into [batch, heads, width, hd]; one full row needs no copy. */
  private pack(rows: readonly Row[], get: (r: Row) => Float32Array, width: number): Float32Array {
    const { nHeads: h, headDim: hd } = this.shape;
    if (rows.length === 1 && rows[0]!.len === width) return get(rows[0]!);
    const out = new Float32Array(rows.length * h * width * hd);
    rows.forEach((r, i) => {
      const src = get(r);
      for (let head = 0; head < h; head++) {
        out.set(src.subarray(head * r.len * hd, (head + 1) * r.len * hd), (i * h + head) * width * hd);
      }
    });
    return out;
  }

  private accept(row: Row, logits: Float32Array): void {
    const index = row.generated.length;
    const { id, logprob } = pickToken(logits, row.req.sampling, index, row.req.logprobs === true);
    row.generated.push(id);
    row.tokens.push(id);
    row.firstTokenAt ??= performance.now();
    row.req.onToken?.(logprob === undefined ? { id, index } : { id, index, logprob });
  }

  private isDone(row: Row): boolean {
    if (row.req.signal?.aborted === true) return true;
    const last = row.generated[row.generated.length - 1];
    if (last === this.shape.eosId && row.req.ignoreEos !== true) return true;
    return row.generated.length >= row.budget;
  }

  private reasonOf(row: Row): FinishReason {
    if (row.req.signal?.aborted === true) return 'cancelled';
    const last = row.generated[row.generated.length - 1];
    if (last === this.shape.eosId && row.req.ignoreEos !== true) return 'eos';
    return row.budget < row.req.maxNewTokens ? 'context' : 'length';
  }

  private leave(row: Row, reason: FinishReason): void {
    const i = this.active.indexOf(row);
    if (i >= 0) this.active.splice(i, 1);
    this.finish(row, reason);
  }

  private finish(row: Row, reason: FinishReason): void {
    row.keys = [];
    row.values = [];
    row.resolve({
      tokenIds: row.generated,
      finishReason: reason,
      ...(row.prefillLogits === undefined ? {} : { prefillLogits: row.prefillLogits }),
      promptTokens: row.req.promptIds.length,
      timeToFirstTokenMs: (row.firstTokenAt ?? performance.now()) - row.submitted,
    });
  }
}
