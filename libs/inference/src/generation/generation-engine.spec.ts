import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';
import { hostTensor, type HostTensor, type InferenceSessionPort } from '../session.port';
import { isStateCopy, LocalStateSession, type StatefulFeed, type StateUpdate } from '../session-state';
import {
  GenerationEngine,
  type DecoderShape,
  type GenerationRequest,
  type TransferReport,
} from './generation-engine';

const VOCAB = 50;
const EOS = 2;
const shape: DecoderShape = {
  nLayers: 1,
  nHeads: 1,
  headDim: 1,
  dim: 1,
  vocabSize: VOCAB,
  maxSeqLen: 32,
  eosId: EOS,
};

/**
 * A fake decoder whose next token is (Σ tokens the row may attend to + its visual offset) mod VOCAB.
 * Keys are the token ids, so a wrong slot placement, mask or offset changes the answer. It speaks
 * the slot-cache interface: past_key_0 [slots, 1, capacity, 1] of which row b reads slot b's first
 * past_lengths[b] positions (and new tokens j ≤ q, j < new_lengths[b]), kv_write_index [batch, 1, seq, 3] says where each new key goes,
 * and present_key_0 is cache_key_0 with the new keys scattered in (the state copies it back, as
 * this fake cannot write in place the way onnxruntime's bound outputs do). With `windowInputs` it
 * speaks the host graph's interface instead: window_key_0 [batch, 1, width, 1] in place of
 * past_key_0, exactly the window (width = max(past_lengths, 1)), as model.host.onnx requires.
 */
class FakeDecoder implements InferenceSessionPort {
  readonly inputNames: string[];
  readonly outputNames: string[];
  readonly batchSizes: number[] = [];
  /** The outputs each run was asked for (beyond the state copies). */
  readonly fetched: string[][] = [];
  failNext = false;

  /** `argmax`: the graph also has next_token, the greedy pick per row, as model.onnx does. */
  constructor(
    private readonly windowInputs = false,
    argmax = false,
  ) {
    this.inputNames = ['input_ids', windowInputs ? 'window_key_0' : 'past_key_0', 'cache_key_0'];
    this.outputNames = argmax ? ['logits', 'next_token'] : [];
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- the port is async; the fake computes synchronously
  async run(
    feeds: Readonly<Record<string, HostTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    if (this.failNext) throw new Error('session exploded');
    this.fetched.push((outputs ?? []).filter((o) => !o.startsWith('new_') && !o.startsWith('present_')));
    const [b, t] = feeds['input_ids']!.dims as [number, number];
    const past = feeds[this.windowInputs ? 'window_key_0' : 'past_key_0']!;
    const cap = past.dims[2]!;
    const cache = feeds['cache_key_0']!;
    const target = cache.dims[2]!;
    const pastLengths = feeds['past_lengths']!.data as BigInt64Array;
    const newLengths = feeds['new_lengths']!.data as BigInt64Array;
    if (this.windowInputs) {
      if ('past_key_0' in feeds) throw new Error('the host graph has no past_key_0');
      const width = Math.max(1, ...Array.from(pastLengths, Number));
      if (past.dims[0] !== b || cap !== width)
        throw new Error(`window_key_0 [${past.dims.join(', ')}] is not the batch's window of ${width}`);
    }
    this.batchSizes.push(b);
    const ids = feeds['input_ids']!.data as BigInt64Array;
    const offsets = feeds['layer_offsets']!.data as Float32Array;
    const rows = feeds['gather_rows']!.data as BigInt64Array;
    const keys = past.data as Float32Array;
    const index = feeds['kv_write_index']!.data as BigInt64Array;
    const fresh = new Float32Array(b * t);
    for (let r = 0; r < b; r++) for (let c = 0; c < t; c++) fresh[r * t + c] = Number(ids[r * t + c]!);
    const logits = new Float32Array(b * VOCAB);
    const picked = new BigInt64Array(b);
    for (let r = 0; r < b; r++) {
      const q = Number(rows[r]!) - r * t;
      let sum = offsets[r]!;
      for (let c = 0; c < Number(pastLengths[r]!); c++) sum += keys[r * cap + c]!;
      for (let j = 0; j <= q && j < Number(newLengths[r]!); j++) sum += fresh[r * t + j]!;
      const next = ((sum % VOCAB) + VOCAB) % VOCAB;
      logits[r * VOCAB + next] = 10;
      picked[r] = BigInt(next);
    }
    const present = (cache.data as Float32Array).slice();
    for (let i = 0; i < b * t; i++) {
      const [slot, head, pos] = [0, 1, 2].map((k) => Number(index[i * 3 + k]!)) as [number, number, number];
      present[(slot + head) * target + pos] = fresh[i]!;
    }
    return {
      logits: hostTensor('float32', [b, VOCAB], logits),
      ...(this.outputNames.includes('next_token') ? { next_token: hostTensor('int64', [b], picked) } : {}),
      present_key_0: hostTensor('float32', cache.dims, present),
      present_value_0: hostTensor('float32', cache.dims, present.slice()),
      new_key_0: hostTensor('float32', [b, 1, t, 1], fresh),
      new_value_0: hostTensor('float32', [b, 1, t, 1], fresh.slice()),
    };
  }

  async release(): Promise<void> {
    await Promise.resolve();
  }
}

/** What the fake model generates, computed directly. */
function reference(prompt: number[], offset: number, maxNew: number, ignoreEos = false): number[] {
  const seq = [...prompt];
  const out: number[] = [];
  const budget = Math.min(maxNew, shape.maxSeqLen - prompt.length);
  while (out.length < budget) {
    const next = (seq.reduce((a, b) => a + b, 0) + offset) % VOCAB;
    out.push(next);
    seq.push(next);
    if (next === EOS && !ignoreEos) break;
  }
  return out;
}

const req = (
  prompt: number[],
  offset: number,
  maxNew: number,
  extra: Partial<GenerationRequest> = {},
): GenerationRequest => ({
  promptIds: prompt,
  layerOffsets: Float32Array.of(offset),
  sampling: { temperature: 0, topP: 0.75, seed: 0n },
  maxNewTokens: maxNew,
  ...extra,
});

describe('GenerationEngine', () => {
  it('decodes one sequence with its KV cache', async () => {
    const engine = new GenerationEngine(new FakeDecoder(), shape);
    const r = await engine.generate(req([1, 7, 9], 3, 8));
    expect(r.tokenIds).toEqual(reference([1, 7, 9], 3, 8));
    expect(r.finishReason).toBe('length');
  });

  /** Three rows of different lengths and offsets, a fourth joining between steps: each row's tokens are its own reference. */
  async function expectStaggeredRowsExact(engine: GenerationEngine): Promise<void> {
    const specs: [number[], number, number][] = [
      [[1, 4], 0, 10],
      [[1, 5, 6, 8, 11], 3, 6],
      [[1], 17, 12],
      [[1, 30, 31], 5, 9],
    ];
    const first = specs.slice(0, 3).map(async ([p, o, n]) => engine.generate(req(p, o, n)));
    await new Promise((resolve) => setTimeout(resolve, 0));
    const late = engine.generate(req(...specs[3]!));
    const results = await Promise.all([...first, late]);
    results.forEach((r, i) => expect(r.tokenIds, `row ${i}`).toEqual(reference(...specs[i]!)));
  }

  it('batches rows of different lengths and offsets, and rows join between steps', async () => {
    const fake = new FakeDecoder();
    const engine = new GenerationEngine(fake, shape, { maxBatch: 3 });
    await expectStaggeredRowsExact(engine);
    expect(Math.max(...fake.batchSizes)).toBe(3);
    expect(fake.batchSizes.filter((b) => b > 1).length).toBeGreaterThan(0);
  });

  it('prefills requests that arrive together in one run, each row causal over its own tokens', async () => {
    const fake = new FakeDecoder();
    const engine = new GenerationEngine(fake, shape, { maxBatch: 4 });
    const specs: [number[], number, number][] = [
      [[1, 9, 9, 9, 9, 9], 1, 5],
      [[1, 3], 4, 5],
      [[1, 20, 21], 0, 5],
    ];
    const results = await Promise.all(specs.map(async (spec) => engine.generate(req(...spec))));
    results.forEach((r, i) => expect(r.tokenIds, `row ${i}`).toEqual(reference(...specs[i]!)));
    expect(fake.batchSizes[0]).toBe(3); // the prefill
    expect(fake.batchSizes.length).toBe(1 + 4); // then one batched step per further token
  });

  it('stops on EOS and includes it, as the official loop does', async () => {
    // prompt sum 1 + offset 1 = 2 = EOS on the first step
    const r = await new GenerationEngine(new FakeDecoder(), shape).generate(req([1], 1, 10));
    expect(r.tokenIds).toEqual([EOS]);
    expect(r.finishReason).toBe('eos');
  });

  it('stops at the end of the context window (MODEL_SPEC §5.7: total_len = min(512, …))', async () => {
    const prompt = Array.from({ length: shape.maxSeqLen - 3 }, () => 3);
    const r = await new GenerationEngine(new FakeDecoder(), shape).generate(
      req(prompt, 0, 10, { ignoreEos: true }),
    );
    expect(r.tokenIds).toHaveLength(3);
    expect(r.finishReason).toBe('context');
  });

  it('refuses a prompt that leaves no room for an answer (fixes B16)', async () => {
    const prompt = Array.from({ length: shape.maxSeqLen }, () => 3);
    await expect(
      new GenerationEngine(new FakeDecoder(), shape).generate(req(prompt, 0, 4)),
    ).rejects.toMatchObject({
      code: ErrorCode.ContextOverflow,
    });
  });

  it('validates token ids, offsets and max_new_tokens', async () => {
    const engine = new GenerationEngine(new FakeDecoder(), shape);
    await expect(engine.generate(req([1, VOCAB], 0, 4))).rejects.toBeInstanceOf(DomainError);
    await expect(
      engine.generate({ ...req([1], 0, 4), layerOffsets: new Float32Array(3) }),
    ).rejects.toMatchObject({
      code: ErrorCode.InvalidInput,
    });
    await expect(engine.generate(req([1], 0, 0))).rejects.toMatchObject({ code: ErrorCode.InvalidInput });
  });

  it('lets a cancelled row leave between steps while the others finish', async () => {
    const engine = new GenerationEngine(new FakeDecoder(), shape, { maxBatch: 4 });
    const controller = new AbortController();
    let seen = 0;
    const cancelled = engine.generate(
      req([1, 3], 0, 20, {
        ignoreEos: true,
        signal: controller.signal,
        onToken: () => {
          if (++seen === 3) controller.abort();
        },
      }),
    );
    const other = engine.generate(req([1, 8], 2, 12));
    const [c, o] = await Promise.all([cancelled, other]);
    expect(c.finishReason).toBe('cancelled');
    expect(c.tokenIds.length).toBeLessThan(20);
    expect(c.tokenIds).toEqual(reference([1, 3], 0, 20).slice(0, c.tokenIds.length));
    expect(o.tokenIds).toEqual(reference([1, 8], 2, 12));
  });

  it('resumes from tokens already sent and produces the same continuation', async () => {
    const full = reference([1, 6], 4, 10);
    const r = await new GenerationEngine(new FakeDecoder(), shape).generate(
      req([1, 6], 4, 10, { resumeIds: full.slice(0, 4) }),
    );
    expect(r.tokenIds).toEqual(full);
  });

  it("feeds the host graph (model.host.onnx) each row's window as window_key_l", async () => {
    const fake = new FakeDecoder(true);
    const engine = new GenerationEngine(fake, shape, { maxBatch: 3 });
    expect(engine.decodeGraph).toBe('host');
    expect(new GenerationEngine(new FakeDecoder(), shape).decodeGraph).toBe('device');
    await expectStaggeredRowsExact(engine);
    expect(Math.max(...fake.batchSizes)).toBe(3);
  });

  it('refuses the host graph for a session that keeps the KV cache on the device', () => {
    const fake = new FakeDecoder(true);
    const onDevice = Object.assign(new LocalStateSession(fake), { stateLocation: 'device' as const });
    expect(() => new GenerationEngine(onDevice, shape)).toThrow(/host graph.*model\.onnx/);
  });

  it('runs decode steps through the step graph of a device session: lengths, views and in-place writes', async () => {
    /**
     * A device session with a step graph: prefills run the fake's general graph (scatter copied in,
     * as LocalStateSession emulates a bound output); 'step' runs compute the fake model the way
     * model.step.onnx's fused attention does: row b reads slot b's first seqlens_k[b] keys plus
     * its new token, and writes the new key at position seqlens_k[b] of its slot, in place.
     */
    class StepDevice extends LocalStateSession {
      readonly stepGraph = true;
      readonly stepRows: number[] = [];
      override async runWithState(
        feeds: Readonly<Record<string, StatefulFeed>>,
        updates: readonly StateUpdate[],
        outputs: readonly string[],
        graph: 'main' | 'step' = 'main',
      ): Promise<Record<string, HostTensor>> {
        if (graph === 'main') return super.runWithState(feeds, updates, outputs);
        const tensor = (name: string): HostTensor => feeds[name] as HostTensor;
        const [k, t] = tensor('input_ids').dims as [number, number];
        const ids = tensor('input_ids').data as BigInt64Array;
        const lengths = tensor('seqlens_k').data as Int32Array;
        const past = feeds['past_key_0'] as { state: string; dims: number[] };
        expect(t).toBe(1);
        expect(tensor('total_sequence_length').dims).toEqual([]);
        expect((tensor('total_sequence_length').data as Int32Array)[0]).toBe(Math.max(...lengths) + 1);
        // the first k slots of the buffer, as they are, and present bound to that very view
        expect(past.dims).toEqual([k, shape.nHeads, shape.maxSeqLen, shape.headDim]);
        expect(updates).toContainEqual({ output: 'present_key_0', input: 'past_key_0' });
        expect(updates.every((u) => !isStateCopy(u))).toBe(true);
        this.stepRows.push(k);
        const keys = this.buffers.get(past.state) as Float32Array;
        const offsets = this.buffers.get('slot.layer_offsets') as Float32Array;
        const cap = shape.maxSeqLen;
        const picked = new BigInt64Array(k);
        for (let r = 0; r < k; r++) {
          let sum = offsets[r]! + Number(ids[r]!);
          for (let c = 0; c < lengths[r]!; c++) sum += keys[r * cap + c]!;
          keys[r * cap + lengths[r]!] = Number(ids[r]!);
          picked[r] = BigInt(((sum % VOCAB) + VOCAB) % VOCAB);
        }
        await Promise.resolve();
        return { next_token: hostTensor('int64', [k], picked) };
      }
    }
    const steps = new StepDevice(new FakeDecoder(false, true));
    const device = Object.assign(steps, { stateLocation: 'device' as const });
    const engine = new GenerationEngine(device, shape, { maxBatch: 3 });
    expect(engine.stepKind).toBe('step');
    await expectStaggeredRowsExact(engine);
    expect(steps.stepRows.length).toBeGreaterThan(10);
    expect(Math.max(...steps.stepRows)).toBe(3);
    // a host session never runs it, even when it has one
    expect(
      new GenerationEngine(
        Object.assign(new LocalStateSession(new FakeDecoder()), { stepGraph: true }),
        shape,
      ).stepKind,
    ).toBe('general');
  });

  it('rejects every row in flight when the session fails', async () => {
    const fake = new FakeDecoder();
    const engine = new GenerationEngine(fake, shape);
    fake.failNext = true;
    await expect(engine.generate(req([1, 2], 0, 5))).rejects.toThrow('session exploded');
    fake.failNext = false;
    expect((await engine.generate(req([1, 4], 0, 3))).tokenIds).toEqual(reference([1, 4], 0, 3));
  });
  it('a join or leave copies nothing of the other rows: each slot position is written once, by its own row', async () => {
    const fake = new FakeDecoder();
    const cap = shape.maxSeqLen; // one head of size 1: slot s holds positions [s·cap, (s+1)·cap)
    /** Records every copy into the key slot buffer, as (run, slot, position) per value written. */
    class Spy extends LocalStateSession {
      readonly writes: { run: number; slot: number; pos: number }[] = [];
      runs = 0;
      override async runWithState(
        feeds: Readonly<Record<string, StatefulFeed>>,
        updates: readonly StateUpdate[],
        outputs: readonly string[],
      ): Promise<Record<string, HostTensor>> {
        this.runs += 1;
        for (const u of updates) {
          if (!isStateCopy(u) || u.state !== 'kv.key.0') continue;
          for (let i = 0; i < u.spans.length; i += 3) {
            for (let k = 0; k < u.spans[i + 2]!; k++) {
              const at = u.spans[i + 1]! + k;
              this.writes.push({ run: this.runs, slot: Math.floor(at / cap), pos: at % cap });
            }
          }
        }
        return super.runWithState(feeds, updates, outputs);
      }
    }
    const spy = new Spy(fake);
    const engine = new GenerationEngine(spy, shape, { maxBatch: 3 });
    let joinedAt = 0;
    let snapshot: Float32Array | Uint16Array | undefined;
    let late: Promise<unknown> | undefined;
    let buffer: Float32Array | Uint16Array | undefined;
    const a = engine.generate(
      req([1, 4, 6], 2, 16, {
        ignoreEos: true,
        onToken: ({ index }) => {
          buffer ??= spy.buffers.get('kv.key.0');
          if (index !== 3) return;
          // A has 3 + 3 positions in slot 0 now; B and C join (B leaves after 2 tokens).
          snapshot = spy.buffers.get('kv.key.0')!.slice(0, cap);
          joinedAt = spy.runs;
          late = Promise.all([
            engine.generate(req([1, 9, 9, 9, 9], 1, 2, { ignoreEos: true })),
            engine.generate(req([1, 7], 3, 6, { ignoreEos: true })),
          ]);
        },
      }),
    );
    const ra = await a;
    const [rb, rc] = (await late) as { tokenIds: number[] }[];
    expect(ra.tokenIds).toEqual(reference([1, 4, 6], 2, 16, true));
    expect(rb!.tokenIds).toEqual(reference([1, 9, 9, 9, 9], 1, 2, true));
    expect(rc!.tokenIds).toEqual(reference([1, 7], 3, 6, true));
    // the same slot buffer object all along: nothing repacks or replaces it
    expect(buffer).toBeInstanceOf(Float32Array);
    expect(spy.buffers.get('kv.key.0')).toBe(buffer);
    // slot 0 (A): each of its positions written exactly once, one per step after its prefill
    const own = spy.writes.filter((w) => w.slot === 0).map((w) => w.pos);
    expect(own).toEqual(Array.from({ length: 3 + 16 - 1 }, (_, i) => i));
    // the join (B and C's prefill) and B's leave wrote nothing into A's slot, and A's positions stand
    const joinRun = spy.writes.filter((w) => w.run === joinedAt + 1);
    expect(joinRun.length).toBeGreaterThan(0);
    expect(joinRun.every((w) => w.slot !== 0)).toBe(true);
    expect(buffer!.slice(0, 6)).toEqual(snapshot!.slice(0, 6));
    // C (slot 2) wrote its own 2 + 6 − 1 positions, each once, and B's leave moved nothing there
    const intoC = spy.writes.filter((w) => w.slot === 2);
    expect(intoC.map((w) => w.pos)).toEqual(Array.from({ length: 2 + 6 - 1 }, (_, i) => i));
    expect(intoC.every((w) => w.run >= joinedAt + 1)).toBe(true);
  });
  it("greedy rows take the graph's next_token (8 bytes a row) instead of the logits", async () => {
    const fake = new FakeDecoder(false, true);
    const reports: TransferReport[] = [];
    const engine = new GenerationEngine(fake, shape, { maxBatch: 4, onTransfer: (r) => reports.push(r) });
    expect(engine.greedyPick).toBe('session');
    const [a, b] = await Promise.all([
      engine.generate(req([1, 4, 6], 2, 8, { ignoreEos: true })),
      engine.generate(req([1, 7], 3, 5, { ignoreEos: true })),
    ]);
    expect(a.tokenIds).toEqual(reference([1, 4, 6], 2, 8, true));
    expect(b.tokenIds).toEqual(reference([1, 7], 3, 5, true));
    expect(fake.fetched.length).toBeGreaterThan(2);
    expect(fake.fetched.every((f) => f.length === 1 && f[0] === 'next_token')).toBe(true);
    for (const r of reports) expect(r.fromSessionBytes).toBe(8 * r.rows);
  });

  it('fetches the logits when a row samples, wants log-probabilities or a prefill dump', async () => {
    for (const extra of [
      { sampling: { temperature: 0.7, topP: 0.9, seed: 5n } },
      { logprobs: true },
      { wantPrefillLogits: true },
    ] satisfies Partial<GenerationRequest>[]) {
      const fake = new FakeDecoder(false, true);
      const engine = new GenerationEngine(fake, shape, { maxBatch: 4 });
      const [plain, other] = await Promise.all([
        engine.generate(req([1, 4, 6], 2, 4, { ignoreEos: true })),
        engine.generate(req([1, 7], 3, 4, { ignoreEos: true, ...extra })),
      ]);
      expect(plain.tokenIds).toEqual(reference([1, 4, 6], 2, 4, true));
      // the fake's logits have one peak of 10: at temperature 0.7 it holds over 0.99 of the mass,
      // so top-p 0.9 keeps only it and sampling gives the greedy tokens too
      expect(other.tokenIds).toEqual(reference([1, 7], 3, 4, true));
      // the joint prefill needs the logits; so does every step while the other row is in the batch,
      // except a dump's, which only the prefill serves
      expect(fake.fetched[0]).toEqual(['logits']);
      const steps = fake.fetched.slice(1);
      if (extra.wantPrefillLogits === true) expect(steps.every((f) => f[0] === 'next_token')).toBe(true);
      else expect(steps.every((f) => f[0] === 'logits')).toBe(true);
    }
  });

  it('picks from the logits on the host for a graph without next_token', async () => {
    const fake = new FakeDecoder();
    const engine = new GenerationEngine(fake, shape, { maxBatch: 2 });
    expect(engine.greedyPick).toBe('host');
    const r = await engine.generate(req([1, 4, 6], 2, 6, { ignoreEos: true }));
    expect(r.tokenIds).toEqual(reference([1, 4, 6], 2, 6, true));
    expect(fake.fetched.every((f) => f[0] === 'logits')).toBe(true);
  });
});
