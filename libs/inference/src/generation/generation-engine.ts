import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { hostTensor, type HostTensor, type InferenceSessionPort } from '../session.port';
import {
  isStateful,
  isStateRef,
  LocalStateSession,
  type StateDtype,
  type StateLocation,
  type StatefulFeed,
  type StatefulSessionPort,
  type StateUpdate,
} from '../session-state';
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
  /** Element type of the slot KV cache the graph was built for (float32 when absent). */
  readonly kvDtype?: StateDtype;
}

/** Bytes that crossed the session boundary (host ↔ where the session runs) in one run. */
export interface TransferReport {
  readonly phase: 'prefill' | 'decode';
  readonly rows: number;
  /** Cache positions the step read (decode) or the padded prompt length (prefill). */
  readonly width: number;
  readonly toSessionBytes: number;
  readonly fromSessionBytes: number;
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
  /** The row's slot of the KV cache once prefilled; −1 before. */
  slot: number;
  /** Positions of the row held in its slot. */
  len: number;
  tokens: number[];
  /** Generated so far (resumed included). */
  generated: number[];
  /** Most tokens this row may generate in total (max_new_tokens and the context both applied). */
  budget: number;
  firstTokenAt?: number;
  prefillLogits?: Float32Array;
}

export interface EngineOptions {
  /** Rows decoded together in one step, and the slots of the KV cache. */
  readonly maxBatch: number;
  /** Padded tokens one batched prefill may hold (batch × longest prompt); 4096 by default. */
  readonly maxPrefillTokens?: number;
  /** Called after every run with the bytes that crossed the session boundary (metrics, bench). */
  readonly onTransfer?: (report: TransferReport) => void;
}

/** Names of the KV state buffers the session holds for layer l. */
export const kvStateNames = (l: number): { key: string; value: string } => ({
  key: `kv.key.${l}`,
  value: `kv.value.${l}`,
});

/** The host graph's input for layer l's window of keys or values (hostDecoderGraph). */
const windowInput = (kind: 'key' | 'value', l: number): string => `window_${kind}_${l}`;

/**
 * The decoder graph's greedy pick, ArgMax of the logits (the first index on ties, as torch.argmax
 * and `argmax`): int64 [batch]. A run whose rows all decode greedily and want no log-probabilities
 * fetches it instead of the logits, so per row 8 bytes leave the session instead of vocab × 4
 * (on a device, the logits never leave it). Repositories built before it have only `logits`.
 */
export const NEXT_TOKEN_OUTPUT = 'next_token';

/**
 * The step graph's (model.step.onnx) inputs beside the ids, offsets and cache views: each row's
 * cache length (int32 [batch]; its new token goes to that position) and the largest plus one
 * (int32 scalar), as onnxruntime's GroupQueryAttention takes them.
 */
export const STEP_GRAPH_INPUTS = { seqlens: 'seqlens_k', total: 'total_sequence_length' } as const;
const LOGITS_OUTPUT = 'logits';

/** gather_rows of a decode step: the one new position of each of its k rows, 0 … k − 1. */
const everyRow = (k: number): HostTensor =>
  hostTensor(
    'int64',
    [k],
    BigInt64Array.from({ length: k }, (_, i) => BigInt(i)),
  );

/** State buffer of each slot's c_l rows [slots, layers, dim]: written at a join, read by every step. */
export const SLOT_OFFSETS_STATE = 'slot.layer_offsets';

/**
 * Host memory only: zeros [slots, heads, 1, hd], the target a decode step's ScatterND copies and
 * scatters into (its result unused: the new K/V come back as new_key/new_value). Kept with the
 * session, so it never crosses to it per step; never written.
 */
const DECODE_SCRATCH_STATE = 'kv.decode_scratch';

/**
 * The slot KV cache's bookkeeping: per layer one [slots, heads, maxSeqLen, hd] buffer for keys and
 * one for values (float32 or float16), held by the session (a worker session keeps it in the
 * worker, or on the device for a GPU provider). A row joins into the lowest free slot and leaves by
 * freeing it; nothing else moves.
 */
export class KvSlots {
  private readonly used: boolean[];

  constructor(readonly slots: number) {
    this.used = Array.from({ length: slots }, () => false);
  }

  acquire(): number {
    const s = this.used.indexOf(false);
    if (s < 0) throw new Error('no free KV slot: the engine admitted more rows than maxBatch');
    this.used[s] = true;
    return s;
  }

  release(slot: number): void {
    this.used[slot] = false;
  }

  /** One past the highest slot in use: the batch a decode step runs (free slots below it ride along). */
  get span(): number {
    return this.used.lastIndexOf(true) + 1;
  }

  reset(): void {
    this.used.fill(false);
  }
}

/**
 * Runs LLaMA generation on a decoder session (MODEL_SPEC §5.7) for many sequences at once:
 * a request is prefilled as soon as it arrives (requests that arrive together in one run), its KV
 * goes into a free slot of the slot cache, and it joins the rows decoded together one token per
 * step; a row leaves when it hits EOS, its budget, the context end, or its signal aborts, and
 * frees its slot. Each row has its own visual offsets and sampling parameters.
 *
 * A decode step feeds the cache buffers as they are (views, no copy) with a mask built from the
 * per-row lengths and the (slot, head, position) each new K/V vector goes to; the graph scatters
 * them into the buffers in place (its present outputs are bound to the cache it was fed). A join
 * writes the new row's prompt KV into its own slot only; a leave writes nothing.
 */
export class GenerationEngine {
  private readonly pending: Row[] = [];
  private readonly active: Row[] = [];
  /** The rows being prefilled: in neither list while their prefill runs. */
  private prefilling: Row[] | undefined;
  private running = false;
  private readonly session: StatefulSessionPort;
  private readonly slots: KvSlots;
  private stateReady: Promise<void> | undefined;
  /**
   * The host graph (model.host.onnx): fed each row's window as window_key_l / window_value_l.
   * Otherwise the graph slices the window out of what it is fed as past_key_l / past_value_l:
   * whole slot buffers on a device, in host memory the window itself (a repository built before
   * the host graph, or a test's fake).
   */
  private readonly windowInputs: boolean;
  /** The graph has NEXT_TOKEN_OUTPUT: greedy runs take the argmax made where the session runs. */
  private readonly sessionArgmax: boolean;
  /** Decode steps run the session's step graph (model.step.onnx, beside model.onnx on a device). */
  private readonly fusedSteps: boolean;

  constructor(
    session: InferenceSessionPort,
    private readonly shape: DecoderShape,
    private readonly options: EngineOptions = { maxBatch: 16 },
  ) {
    const inputs = session.inputNames;
    this.windowInputs = inputs.includes(windowInput('key', 0));
    this.sessionArgmax = session.outputNames.includes(NEXT_TOKEN_OUTPUT);
    if (inputs.length > 0 && !inputs.includes('past_key_0') && !this.windowInputs) {
      throw new Error(
        'this decoder.onnx predates the split cache inputs (past_key_l beside cache_key_l): ' +
          'rebuild the repository with `ibllm models build`',
      );
    }
    this.session = isStateful(session) ? session : new LocalStateSession(session);
    if (this.windowInputs && this.session.stateLocation === 'device') {
      throw new Error(
        "the decoder's host graph (model.host.onnx, fed window_key_l) cannot read a KV cache kept on the device: " +
          'load model.onnx for a device session',
      );
    }
    this.slots = new KvSlots(options.maxBatch);
    this.fusedSteps = this.session.stepGraph === true && this.session.stateLocation === 'device';
  }

  /** Where the session keeps the slot KV cache: on the device for a GPU provider, else host memory. */
  get stateLocation(): StateLocation {
    return this.session.stateLocation;
  }

  /**
   * Which decoder graph the session runs: `host` (model.host.onnx, fed each row's cache window) or
   * `device` (model.onnx, which slices the windows out of what it is fed).
   */
  get decodeGraph(): 'host' | 'device' {
    return this.windowInputs ? 'host' : 'device';
  }

  /**
   * What decode steps run: `step` (model.step.onnx, the attention fused and the cache written in
   * place; a device session that loaded it) or `general` (the graph prefills run too).
   */
  get stepKind(): 'step' | 'general' {
    return this.fusedSteps ? 'step' : 'general';
  }

  /**
   * Where greedy tokens are picked: `session` (the graph's next_token: on a GPU provider, on the
   * device) or `host` (from the logits; a repository built before next_token).
   */
  get greedyPick(): 'session' | 'host' {
    return this.sessionArgmax ? 'session' : 'host';
  }

  /** Rows decoding now and waiting for prefill. */
  get load(): { active: number; pending: number } {
    return { active: this.active.length, pending: this.pending.length };
  }

  /** Float32 values of one layer's key (or value) slot buffer: slots × heads × maxSeqLen × hd. */
  get slotElements(): number {
    const s = this.shape;
    return this.options.maxBatch * s.nHeads * s.maxSeqLen * s.headDim;
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
        slot: -1,
        len: 0,
        tokens: [...req.promptIds, ...resumed],
        generated: generatedSoFar,
        budget,
      });
      this.kick();
    });
  }

  /** Allocates the slot buffers in the session once (lazily: an idle engine holds no KV memory). */
  private async ensureState(): Promise<void> {
    this.stateReady ??= (async () => {
      const dtype = this.shape.kvDtype ?? 'float32';
      for (let l = 0; l < this.shape.nLayers; l++) {
        const names = kvStateNames(l);
        await this.session.createState(names.key, this.slotElements, { dtype });
        await this.session.createState(names.value, this.slotElements, { dtype });
      }
      const { nLayers, dim } = this.shape;
      // Written at each join (a device session writes the row on the device), read by every step.
      await this.session.createState(SLOT_OFFSETS_STATE, this.options.maxBatch * nLayers * dim);
      if (this.session.stateLocation !== 'device') {
        const { nHeads, headDim } = this.shape;
        await this.session.createState(DECODE_SCRATCH_STATE, this.options.maxBatch * nHeads * headDim, {
          dtype,
        });
      }
    })();
    return this.stateReady;
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
        this.slots.reset();
        for (const row of [...inFlight, ...this.pending.splice(0), ...this.active.splice(0)])
          row.reject(error);
      },
    );
  }

  private async loop(): Promise<void> {
    await this.ensureState();
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
   * to its own tokens only (the graph masks padding keys from each row's new_lengths; padding
   * queries see the row's real tokens so no softmax row is empty). Each row's positions go into its
   * own slot.
   */
  private async prefill(rows: readonly Row[]): Promise<void> {
    const s = this.shape;
    const b = rows.length;
    const t = Math.max(...rows.map((r) => r.tokens.length));
    const ids = new BigInt64Array(b * t);
    const pos = new BigInt64Array(b * t);
    const fresh = new BigInt64Array(b);
    const offsets = new Float32Array(b * s.nLayers * s.dim);
    const gather = new BigInt64Array(b);
    const perLayer = s.nLayers * s.dim;
    rows.forEach((row, i) => {
      const n = row.tokens.length;
      for (let k = 0; k < t; k++) {
        ids[i * t + k] = BigInt(k < n ? row.tokens[k]! : 0);
        pos[i * t + k] = BigInt(k);
      }
      fresh[i] = BigInt(n);
      offsets.set(row.req.layerOffsets, i * perLayer);
      gather[i] = BigInt(i * t + n - 1);
    });
    // Slots are taken before the run so the graph writes each row's KV straight into its own.
    for (const row of rows) row.slot = this.slots.acquire();
    const { nHeads: h } = s;
    const device = this.session.stateLocation === 'device';
    const index = new BigInt64Array(b * h * t * 3);
    rows.forEach((row, i) => {
      for (let head = 0; head < h; head++) {
        for (let k = 0; k < t; k++) {
          // Padding positions (k ≥ the row's length) land in the row's own slot, masked until
          // overwritten. In host memory the scatter goes to the run's own scratch cache (row i).
          const at = ((i * h + head) * t + k) * 3;
          index[at] = BigInt(device ? row.slot : i);
          index[at + 1] = BigInt(head);
          index[at + 2] = BigInt(k);
        }
      }
    });
    const feeds: Record<string, StatefulFeed> = {
      input_ids: hostTensor('int64', [b, t], ids),
      position_ids: hostTensor('int64', [b, t], pos),
      past_lengths: hostTensor('int64', [b], new BigInt64Array(b)),
      new_lengths: hostTensor('int64', [b], fresh),
      layer_offsets: hostTensor('float32', [b, s.nLayers, s.dim], offsets),
      gather_rows: hostTensor('int64', [b], gather),
      kv_write_index: { dtype: 'int64', dims: [b, h, t, 3], data: index },
      ...this.cacheFeeds(b, 0, t),
    };
    // host cache: each row's first `len` new positions (per head) into its slot
    const { headDim: hd, maxSeqLen: cap } = s;
    const spans = new Int32Array(b * h * 3);
    rows.forEach((row, i) => {
      for (let head = 0; head < h; head++) {
        spans.set(
          [(i * h + head) * t * hd, (row.slot * h + head) * cap * hd, row.tokens.length * hd],
          (i * h + head) * 3,
        );
      }
    });
    let out: Record<string, HostTensor>;
    try {
      for (const row of rows)
        await this.session.writeState(SLOT_OFFSETS_STATE, row.slot * perLayer, row.req.layerOffsets);
      out = await this.session.runWithState(feeds, this.cacheUpdates(spans), [this.fetchFor(rows, true)]);
    } catch (error) {
      for (const row of rows) this.slots.release(row.slot);
      throw error;
    }
    this.report('prefill', b, t, feeds, out);
    const logits = out[LOGITS_OUTPUT]?.data as Float32Array | undefined;
    rows.forEach((row, i) => {
      row.len = row.tokens.length;
      if (logits === undefined) {
        this.acceptPicked(row, out[NEXT_TOKEN_OUTPUT]!, i);
      } else {
        const own = logits.subarray(i * s.vocabSize, (i + 1) * s.vocabSize);
        if (row.req.wantPrefillLogits === true) row.prefillLogits = own.slice();
        this.accept(row, own);
      }
      if (this.isDone(row)) this.finish(row, this.reasonOf(row));
      else this.active.push(row);
    });
  }

  /**
   * One decode step over slots [0, span): each row reads its slot's first `len` positions (a
   * per-row mask over the common width, built in the graph from past_lengths) plus its new token,
   * and the graph writes the new position's K/V into the row's slot. Free slots below the span ride
   * along seeing only their own new token; their outputs are ignored.
   */
  private async step(): Promise<void> {
    if (this.fusedSteps) return this.fusedStep();
    const s = this.shape;
    const h = s.nHeads;
    const rows = [...this.active];
    const k = this.slots.span;
    const width = Math.max(...rows.map((r) => r.len));
    const ids = new BigInt64Array(k);
    const pos = new BigInt64Array(k);
    // Free slots riding along read no cache positions (past 0) and see only their own new token.
    const past = new BigInt64Array(k);
    // (slot, head, position) of each new K/V vector; a free slot riding along writes its own
    // position 0, which the next row to take that slot overwrites at its prefill.
    const index = new BigInt64Array(k * h * 3);
    for (let slot = 0; slot < k; slot++) {
      for (let head = 0; head < h; head++) {
        index[(slot * h + head) * 3] = BigInt(slot);
        index[(slot * h + head) * 3 + 1] = BigInt(head);
      }
    }
    const { headDim: hd, maxSeqLen: cap } = s;
    const device = this.session.stateLocation === 'device';
    // host cache: the new position of each row (per head) into its slot
    const spans = new Int32Array(rows.length * h * 3);
    rows.forEach((r, i) => {
      ids[r.slot] = BigInt(r.tokens[r.tokens.length - 1]!);
      pos[r.slot] = BigInt(r.len);
      past[r.slot] = BigInt(r.len);
      for (let head = 0; head < h; head++) {
        // on a device at the row's next position in its slot; in host memory at position 0 of the
        // run's scratch (row `slot` of the span), since the slots are updated from new_key/new_value
        if (device) index[(r.slot * h + head) * 3 + 2] = BigInt(r.len);
        spans.set(
          [(r.slot * h + head) * hd, ((r.slot * h + head) * cap + r.len) * hd, hd],
          (i * h + head) * 3,
        );
      }
    });
    const feeds: Record<string, StatefulFeed> = {
      input_ids: hostTensor('int64', [k, 1], ids),
      position_ids: hostTensor('int64', [k, 1], pos),
      past_lengths: hostTensor('int64', [k], past),
      new_lengths: hostTensor('int64', [k], new BigInt64Array(k).fill(1n)),
      // the rows' c_l stay with the session from their join on
      layer_offsets: { state: SLOT_OFFSETS_STATE, dims: [k, s.nLayers, s.dim] },
      gather_rows: everyRow(k),
      kv_write_index: { dtype: 'int64', dims: [k, h, 1, 3], data: index },
      ...this.cacheFeeds(k, width, 1),
    };
    const out = await this.session.runWithState(feeds, this.cacheUpdates(spans), [
      this.fetchFor(rows, false),
    ]);
    this.finishStep(rows, k, width, feeds, out);
  }

  /**
   * A decode step through the session's step graph (model.step.onnx, device only): the first `span`
   * slots of every layer's buffers are fed as they are and written in place by the fused
   * attention, which puts each row's new K/V at position seqlens_k (its length), rotates q and k
   * there and attends over [0, length]. Free slots riding along have length 0: they write their
   * own position 0, which the next row to take the slot overwrites at its prefill.
   */
  private async fusedStep(): Promise<void> {
    const s = this.shape;
    const rows = [...this.active];
    const k = this.slots.span;
    const width = Math.max(...rows.map((r) => r.len));
    const ids = new BigInt64Array(k);
    const lengths = new Int32Array(k);
    for (const r of rows) {
      ids[r.slot] = BigInt(r.tokens[r.tokens.length - 1]!);
      lengths[r.slot] = r.len;
    }
    const feeds: Record<string, StatefulFeed> = {
      input_ids: hostTensor('int64', [k, 1], ids),
      layer_offsets: { state: SLOT_OFFSETS_STATE, dims: [k, s.nLayers, s.dim] },
      gather_rows: everyRow(k),
      [STEP_GRAPH_INPUTS.seqlens]: { dtype: 'int32', dims: [k], data: lengths },
      [STEP_GRAPH_INPUTS.total]: { dtype: 'int32', dims: [], data: Int32Array.of(width + 1) },
    };
    const updates: StateUpdate[] = [];
    for (let l = 0; l < s.nLayers; l++) {
      const names = kvStateNames(l);
      for (const [kind, state] of [
        ['key', names.key],
        ['value', names.value],
      ] as const) {
        feeds[`past_${kind}_${l}`] = { state, dims: [k, s.nHeads, s.maxSeqLen, s.headDim] };
        updates.push({ output: `present_${kind}_${l}`, input: `past_${kind}_${l}` });
      }
    }
    const out = await this.session.runWithState(feeds, updates, [this.fetchFor(rows, false)], 'step');
    this.finishStep(rows, k, width, feeds, out);
  }

  /** Reports a decode step's transfers and takes each row's next token. */
  private finishStep(
    rows: readonly Row[],
    k: number,
    width: number,
    feeds: Readonly<Record<string, StatefulFeed>>,
    out: Readonly<Record<string, HostTensor>>,
  ): void {
    const s = this.shape;
    this.report('decode', k, width, feeds, out);
    const logits = out[LOGITS_OUTPUT]?.data as Float32Array | undefined;
    for (const r of rows) {
      r.len += 1;
      if (logits === undefined) this.acceptPicked(r, out[NEXT_TOKEN_OUTPUT]!, r.slot);
      else this.accept(r, logits.subarray(r.slot * s.vocabSize, (r.slot + 1) * s.vocabSize));
      if (this.isDone(r)) this.leave(r, this.reasonOf(r));
    }
  }

  /**
   * The cache inputs of a run over `rows` rows reading `width` positions and adding `fresh`. On a
   * device: every layer's slot buffers, whole (views: nothing is copied), as both what the graph
   * reads (past_*) and what it scatters into (cache_*). In host memory: as window_* (past_* for a
   * graph without the windows as inputs), each row's first `width` positions, compacted by the
   * session into buffers it reuses (the host graph copies no more of the cache: it reads the window
   * as fed); as cache_*, one zeroed scratch of the `fresh` new positions,
   * the scatter's target, whose result is not used: the new K/V come back as new_key/new_value
   * and are copied into the slots.
   */
  private cacheFeeds(rows: number, width: number, fresh: number): Record<string, StatefulFeed> {
    const { nLayers, nHeads, maxSeqLen, headDim } = this.shape;
    const device = this.session.stateLocation === 'device';
    const feeds: Record<string, StatefulFeed> = {};
    // Read only by ScatterND, never written: one scratch serves every layer (a decode step's stays
    // with the session). A prefill's past is one zeroed position (the graph reads at least one,
    // masked out).
    const scratch: StatefulFeed | undefined = device
      ? undefined
      : width > 0 && fresh === 1
        ? { state: DECODE_SCRATCH_STATE, dims: [rows, nHeads, 1, headDim] }
        : this.scratchCache(rows, fresh);
    const emptyPast = device || width > 0 ? undefined : this.scratchCache(rows, 1);
    for (let l = 0; l < nLayers; l++) {
      const names = kvStateNames(l);
      for (const [kind, state] of [
        ['key', names.key],
        ['value', names.value],
      ] as const) {
        if (device) {
          const whole = { state, dims: [this.options.maxBatch, nHeads, maxSeqLen, headDim] };
          feeds[`past_${kind}_${l}`] = whole;
          feeds[`cache_${kind}_${l}`] = whole;
          continue;
        }
        feeds[this.windowInputs ? windowInput(kind, l) : `past_${kind}_${l}`] = emptyPast ?? {
          state,
          dims: [rows, nHeads, width, headDim],
          window: { capacity: maxSeqLen, width },
        };
        feeds[`cache_${kind}_${l}`] = scratch!;
      }
    }
    return feeds;
  }

  private scratchCache(rows: number, positions: number): HostTensor {
    const dims = [rows, this.shape.nHeads, positions, this.shape.headDim];
    const n = rows * this.shape.nHeads * positions * this.shape.headDim;
    return this.shape.kvDtype === 'float16'
      ? { dtype: 'float16', dims, data: new Uint16Array(n) }
      : { dtype: 'float32', dims, data: new Float32Array(n) };
  }

  /**
   * How the run updates the cache: on a device the present outputs are bound to the buffers they
   * update (in place); in host memory the new positions are copied into the slots (`spans`).
   */
  private cacheUpdates(spans: Int32Array): StateUpdate[] {
    const device = this.session.stateLocation === 'device';
    const updates: StateUpdate[] = [];
    for (let l = 0; l < this.shape.nLayers; l++) {
      const names = kvStateNames(l);
      if (device) {
        updates.push({ output: `present_key_${l}`, input: `cache_key_${l}` });
        updates.push({ output: `present_value_${l}`, input: `cache_value_${l}` });
      } else {
        updates.push({ output: `new_key_${l}`, state: names.key, spans });
        updates.push({ output: `new_value_${l}`, state: names.value, spans });
      }
    }
    return updates;
  }

  /**
   * Counts what crossed the session boundary: host feeds in, the logits or the picked ids out (state views stay where
   * the session keeps them).
   */
  private report(
    phase: TransferReport['phase'],
    rows: number,
    width: number,
    feeds: Readonly<Record<string, StatefulFeed>>,
    out: Readonly<Record<string, HostTensor>>,
  ): void {
    if (this.options.onTransfer === undefined) return;
    let toSession = 0;
    for (const feed of Object.values(feeds)) if (!isStateRef(feed)) toSession += feed.data.byteLength;
    let fromSession = 0;
    for (const t of Object.values(out)) fromSession += t.data.byteLength;
    this.options.onTransfer({ phase, rows, width, toSessionBytes: toSession, fromSessionBytes: fromSession });
  }

  /**
   * What a run fetches: the graph's argmax when every row decodes greedily without log-probabilities
   * (and, at prefill, without a logits dump) and the graph has it; else the logits.
   */
  private fetchFor(rows: readonly Row[], prefill: boolean): string {
    if (!this.sessionArgmax) return LOGITS_OUTPUT;
    const needsLogits = rows.some(
      (r) =>
        r.req.sampling.temperature > 0 ||
        r.req.logprobs === true ||
        (prefill && r.req.wantPrefillLogits === true),
    );
    return needsLogits ? LOGITS_OUTPUT : NEXT_TOKEN_OUTPUT;
  }

  private accept(row: Row, logits: Float32Array): void {
    const { id, logprob } = pickToken(
      logits,
      row.req.sampling,
      row.generated.length,
      row.req.logprobs === true,
    );
    this.push(row, id, logprob);
  }

  /** Row `at` of the graph's next_token output: the token a greedy row takes. */
  private acceptPicked(row: Row, picked: HostTensor, at: number): void {
    const data = picked.data;
    if (!(data instanceof BigInt64Array) || at >= data.length)
      throw new Error(`the session's ${NEXT_TOKEN_OUTPUT} is not an int64 id per row`);
    const id = Number(data[at]!);
    if (!Number.isInteger(id) || id < 0 || id >= this.shape.vocabSize)
      throw new Error(`the session's ${NEXT_TOKEN_OUTPUT} gave ${id}, outside the vocabulary`);
    this.push(row, id, undefined);
  }

  private push(row: Row, id: number, logprob: number | undefined): void {
    const index = row.generated.length;
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
    if (row.slot >= 0) this.slots.release(row.slot);
    row.slot = -1;
    row.resolve({
      tokenIds: row.generated,
      finishReason: reason,
      ...(row.prefillLogits === undefined ? {} : { prefillLogits: row.prefillLogits }),
      promptTokens: row.req.promptIds.length,
      timeToFirstTokenMs: (row.firstTokenAt ?? performance.now()) - row.submitted,
    });
  }
}
