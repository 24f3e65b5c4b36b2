/**
 * WebAssembly SIMD kernels for the exact inner-product scan (issue #18 item 3), assembled here byte
 * by byte — no toolchain, no binary blob.
 *
 * Bit-identical by construction: every f64x2 lane holds ONE (query, row) score and adds the
 * products q[i]·x[i] in index order, each product formed in float64 (a float32 × float32 product
 * is exact there) and each add rounded to float64 — the very operations of `dot` from
 * @imagebind-llm/domain; WebAssembly fixes IEEE round-to-nearest and never fuses a multiply-add.
 * The final f32x4.demote_f64x2_zero is Math.fround. SIMD only runs several scores side by side:
 * two rows of one query (`single`), or two queries of one row (`pairs`).
 *
 * A module is specialised for one dimension d, so every row and query offset is an immediate and
 * the loop over i has a fixed trip count. Rows are copied into the module's memory a block of
 * BLOCK_ROWS at a time (a WebAssembly function cannot read a JS Float32Array in place); the scan
 * then reads the block from cache once per query pair.
 */

/** Rows per block copied into WebAssembly memory: 32 rows of 1024 floats = 128 KiB, inside L2. */
export const BLOCK_ROWS = 32;
/** Query pairs one `pairs` call scans together (8 queries → 8 f64x2 accumulators). */
export const PAIRS_PER_CALL = 4;
/** Rows of one `single` call step: four f64x2 accumulators, two rows each. */
const SINGLE_ROWS = 8;
/** Rows of one `pairs` call step. */
const PAIR_ROWS = 2;
/** Unroll of the loop over i (the tail d % UNROLL is unrolled too; d is known). */
const UNROLL = 4;

const PAGE = 65536;

// @types/node at our pin declares no WebAssembly (it lives in lib.dom): the few members used here,
// typed as Node defines them.
interface WasmModule {
  readonly [Symbol.toStringTag]: string;
}
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  readonly Module: new (bytes: Uint8Array) => WasmModule;
  readonly Memory: new (descriptor: { initial: number }) => WasmMemory;
  readonly Instance: new (
    module: WasmModule,
    imports: Record<string, Record<string, unknown>>,
  ) => { readonly exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}
const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

// ---- encoding helpers ----------------------------------------------------------------------

function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

const I32 = 0x7f;
const V128 = 0x7b;
const op = {
  localGet: (i: number) => [0x20, ...uleb(i)],
  localSet: (i: number) => [0x21, ...uleb(i)],
  localTee: (i: number) => [0x22, ...uleb(i)],
  i32Const: (v: number) => [0x41, ...sleb(v)],
  i32Add: [0x6a],
  i32LtU: [0x49],
  loop: [0x03, 0x40],
  block: [0x02, 0x40],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  end: [0x0b],
  // SIMD (0xfd prefix); memarg = align log2, offset.
  v128Load: (offset: number) => [0xfd, ...uleb(0x00), 4, ...uleb(offset)],
  v128Load32Splat: (offset: number) => [0xfd, ...uleb(0x09), 2, ...uleb(offset)],
  v128Load32Zero: (offset: number) => [0xfd, ...uleb(0x5c), 2, ...uleb(offset)],
  v128Load32Lane: (offset: number, lane: number) => [0xfd, ...uleb(0x56), 2, ...uleb(offset), lane],
  v128Store32Lane: (offset: number, lane: number) => [0xfd, ...uleb(0x5a), 2, ...uleb(offset), lane],
  v128Store64Lane: (offset: number, lane: number) => [0xfd, ...uleb(0x5b), 3, ...uleb(offset), lane],
  v128Zero: [0xfd, ...uleb(0x0c), ...new Array<number>(16).fill(0)],
  f64x2PromoteLow: [0xfd, ...uleb(0x5f)],
  f32x4DemoteZero: [0xfd, ...uleb(0x5e)],
  f64x2Add: [0xfd, ...uleb(0xf0)],
  f64x2Mul: [0xfd, ...uleb(0xf2)],
};

interface Body {
  readonly locals: number[]; // types of the locals after the params
  readonly code: number[];
}

function encodeBody({ locals, code }: Body): number[] {
  const groups: number[][] = locals.map((type) => [1, type]);
  const body = [...vec(groups), ...code, ...op.end];
  return [...uleb(body.length), ...body];
}

// Locals shared by every kernel: the params (q, out, n) and the loop's pointers.
const [Q, OUT, N] = [0, 1, 2];
const [P, QP, END, POUT] = [3, 4, 5, 6];
/** The first local after those (each kernel's own v128 locals start here). */
const OWN = 7;

/**
 * The skeleton of every kernel: for each group of `groupRows` rows of the block (P walks the rows,
 * POUT the scores), zero the `accumulators` v128 locals from `accFirst`, walk i over the d
 * elements — `step(j)` emits element i + j of the unrolled loop, reading rows at P and query data
 * at QP — then `store()` writes the group's scores at POUT.
 */
function rowGroupLoop(
  code: number[],
  d: number,
  groupRows: number,
  accFirst: number,
  accumulators: number,
  step: (j: number) => void,
  store: () => void,
): void {
  const rowBytes = d * 4;
  code.push(...op.i32Const(0), ...op.localSet(P));
  code.push(...op.localGet(OUT), ...op.localSet(POUT));
  code.push(...op.localGet(N), ...op.i32Const(rowBytes), 0x6c /* i32.mul */, ...op.localSet(END));
  code.push(...op.block, ...op.loop); // the rows loop
  code.push(...op.localGet(P), ...op.localGet(END), 0x4f /* i32.ge_u */, ...op.brIf(1));
  for (let a = 0; a < accumulators; a++) code.push(...op.v128Zero, ...op.localSet(accFirst + a));
  code.push(...op.localGet(Q), ...op.localSet(QP));
  const main = Math.floor(d / UNROLL);
  if (main > 0) {
    // The i loop: P advances 4 B and QP 16 B per element, until QP reaches q + main·UNROLL·16.
    code.push(...op.loop);
    for (let j = 0; j < UNROLL; j++) step(j);
    code.push(...op.localGet(P), ...op.i32Const(UNROLL * 4), ...op.i32Add, ...op.localSet(P));
    code.push(...op.localGet(QP), ...op.i32Const(UNROLL * 16), ...op.i32Add, ...op.localTee(QP));
    code.push(
      ...op.localGet(Q),
      ...op.i32Const(main * UNROLL * 16),
      ...op.i32Add,
      ...op.i32LtU,
      ...op.brIf(0),
    );
    code.push(...op.end);
  }
  // The tail d % UNROLL, read at P + j·4 and QP + j·16 without advancing them.
  for (let j = 0; j < d % UNROLL; j++) step(j);
  store();
  // Next group: P moves on by the group's rows less the part of the row already walked.
  code.push(
    ...op.localGet(P),
    ...op.i32Const(groupRows * rowBytes - main * UNROLL * 4),
    ...op.i32Add,
    ...op.localSet(P),
  );
  code.push(...op.localGet(POUT), ...op.i32Const(groupRows * 4), ...op.i32Add, ...op.localSet(POUT));
  code.push(0x0c, 0 /* br 0: the rows loop */, ...op.end, ...op.end);
}

/**
 * `single(q, out, n)`: one query against rows [0, n) of the block (n a multiple of 8). q points at
 * d f64x2 (q[i], q[i]); score of row r goes to f32 out[r].
 */
function singleKernel(d: number): Body {
  const ACC = OWN; // SINGLE_ROWS / 2 accumulators, two rows each
  const QQ = ACC + SINGLE_ROWS / 2;
  const rowBytes = d * 4;
  const code: number[] = [];
  const step = (j: number): void => {
    code.push(...op.localGet(QP), ...op.v128Load(j * 16), ...op.localSet(QQ));
    for (let k = 0; k < SINGLE_ROWS / 2; k++) {
      code.push(
        ...op.localGet(ACC + k),
        ...op.localGet(P),
        ...op.localGet(P),
        ...op.v128Load32Zero(2 * k * rowBytes + j * 4),
        ...op.v128Load32Lane((2 * k + 1) * rowBytes + j * 4, 1),
        ...op.f64x2PromoteLow,
        ...op.localGet(QQ),
        ...op.f64x2Mul,
        ...op.f64x2Add,
        ...op.localSet(ACC + k),
      );
    }
  };
  const store = (): void => {
    for (let k = 0; k < SINGLE_ROWS / 2; k++) {
      code.push(
        ...op.localGet(POUT),
        ...op.localGet(ACC + k),
        ...op.f32x4DemoteZero,
        ...op.v128Store64Lane(k * 8, 0),
      );
    }
  };
  rowGroupLoop(code, d, SINGLE_ROWS, ACC, SINGLE_ROWS / 2, step, store);
  return { locals: [I32, I32, I32, I32, ...new Array<number>(SINGLE_ROWS / 2 + 1).fill(V128)], code };
}

/**
 * `pairsP(q, out, n)`: P query pairs against rows [0, n) (n a multiple of 2). Pair p's data is d
 * f64x2 (qa[i], qb[i]) at q + p·16d; the scores of its two queries go to f32 out[(2p)·BLOCK + r]
 * and out[(2p+1)·BLOCK + r].
 */
function pairsKernel(d: number, pairs: number): Body {
  const XX = OWN; // PAIR_ROWS locals
  const QQ = XX + PAIR_ROWS;
  const ACC = QQ + 1; // PAIR_ROWS * pairs
  const rowBytes = d * 4;
  const code: number[] = [];
  const step = (j: number): void => {
    for (let r = 0; r < PAIR_ROWS; r++) {
      code.push(
        ...op.localGet(P),
        ...op.v128Load32Splat(r * rowBytes + j * 4),
        ...op.f64x2PromoteLow,
        ...op.localSet(XX + r),
      );
    }
    for (let p = 0; p < pairs; p++) {
      code.push(...op.localGet(QP), ...op.v128Load(p * d * 16 + j * 16), ...op.localSet(QQ));
      for (let r = 0; r < PAIR_ROWS; r++) {
        const acc = ACC + r * pairs + p;
        code.push(
          ...op.localGet(acc),
          ...op.localGet(QQ),
          ...op.localGet(XX + r),
          ...op.f64x2Mul,
          ...op.f64x2Add,
          ...op.localSet(acc),
        );
      }
    }
  };
  const store = (): void => {
    for (let r = 0; r < PAIR_ROWS; r++) {
      for (let p = 0; p < pairs; p++) {
        const acc = ACC + r * pairs + p;
        code.push(...op.localGet(acc), ...op.f32x4DemoteZero, ...op.localSet(QQ));
        code.push(
          ...op.localGet(POUT),
          ...op.localGet(QQ),
          ...op.v128Store32Lane((2 * p * BLOCK_ROWS + r) * 4, 0),
        );
        code.push(
          ...op.localGet(POUT),
          ...op.localGet(QQ),
          ...op.v128Store32Lane(((2 * p + 1) * BLOCK_ROWS + r) * 4, 1),
        );
      }
    }
  };
  rowGroupLoop(code, d, PAIR_ROWS, ACC, PAIR_ROWS * pairs, step, store);
  return {
    locals: [I32, I32, I32, I32, ...new Array<number>(PAIR_ROWS + 1 + PAIR_ROWS * pairs).fill(V128)],
    code,
  };
}

function assemble(d: number): Uint8Array {
  const bodies: Body[] = [singleKernel(d)];
  for (let p = 1; p <= PAIRS_PER_CALL; p++) bodies.push(pairsKernel(d, p));
  const type = [0x60, ...vec([[I32], [I32], [I32]]), 0];
  const exportNames = ['single', ...Array.from({ length: PAIRS_PER_CALL }, (_, i) => `pairs${i + 1}`)];
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec([type])),
    ...section(2, vec([[...name('m'), ...name('memory'), 0x02, 0x00, ...uleb(1)]])),
    ...section(3, vec(bodies.map(() => [0]))),
    ...section(7, vec(exportNames.map((n, i) => [...name(n), 0x00, ...uleb(i)]))),
    ...section(10, vec(bodies.map(encodeBody))),
  ];
  return Uint8Array.from(bytes);
}

type Kernel = (q: number, out: number, n: number) => void;

/** One instantiated kernel set with its own memory: [block rows | scores | queries]. */
export class ScanKernel {
  readonly single: Kernel;
  readonly pairs: readonly Kernel[]; // pairs[p - 1] scans p pairs
  private readonly memory: WasmMemory;
  /** Byte offsets in the memory. */
  readonly scoresAt: number;
  block!: Float32Array;
  scores!: Float32Array;
  queryData!: Float64Array;

  constructor(
    readonly dimension: number,
    module: WasmModule,
  ) {
    this.scoresAt = BLOCK_ROWS * dimension * 4;
    // The block and one query's scores and data: ensure() grows it for a batch.
    this.memory = new wasm!.Memory({
      initial: Math.ceil((this.scoresAt + 3 * BLOCK_ROWS * 4 + 16 + 2 * dimension * 16) / PAGE),
    });
    const instance = new wasm!.Instance(module, { m: { memory: this.memory } });
    const e = instance.exports as Record<string, Kernel | undefined>;
    this.single = e['single']!;
    this.pairs = Array.from({ length: PAIRS_PER_CALL }, (_, i) => e[`pairs${i + 1}`]!);
    this.views();
  }

  /**
   * Room for `queries` queries: scores [queries + 1, BLOCK_ROWS] f32 then query data
   * (ceil(queries / 2) pairs + 1 single) × d f64x2, 16-byte aligned.
   */
  ensure(queries: number): number {
    const scoresBytes = (queries + 2) * BLOCK_ROWS * 4;
    const queriesAt = Math.ceil((this.scoresAt + scoresBytes) / 16) * 16;
    const need = queriesAt + (Math.ceil(queries / 2) + 1) * this.dimension * 16;
    const have = this.memory.buffer.byteLength;
    if (need > have) this.memory.grow(Math.ceil((need - have) / PAGE));
    this.views();
    return queriesAt;
  }

  private views(): void {
    const buffer = this.memory.buffer;
    this.block = new Float32Array(buffer, 0, BLOCK_ROWS * this.dimension);
    this.scores = new Float32Array(buffer, this.scoresAt);
    this.queryData = new Float64Array(buffer);
  }
}

const modules = new Map<number, WasmModule | null>();
const pool = new Map<number, ScanKernel[]>();

/** Whether this runtime runs WebAssembly SIMD (Node ≥ 16 does); else callers scan in JS. */
function moduleFor(d: number): WasmModule | null {
  let m = modules.get(d);
  if (m === undefined) {
    try {
      const bytes = assemble(d);
      m = wasm !== undefined && wasm.validate(bytes) ? new wasm.Module(bytes) : null;
    } catch {
      m = null;
    }
    modules.set(d, m);
  }
  return m;
}

/** A kernel for dimension d from the pool (or a new one); undefined when SIMD is unavailable. */
export function acquireKernel(d: number): ScanKernel | undefined {
  const free = pool.get(d);
  if (free !== undefined && free.length > 0) return free.pop();
  const m = moduleFor(d);
  return m === null ? undefined : new ScanKernel(d, m);
}

/** Returns a kernel to the pool (a few per dimension are kept). */
export function releaseKernel(kernel: ScanKernel): void {
  let free = pool.get(kernel.dimension);
  if (free === undefined) pool.set(kernel.dimension, (free = []));
  if (free.length < 4) free.push(kernel);
}
