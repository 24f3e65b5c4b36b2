// The ONNX writer's bytes: pinned to what the hand-written encoder it replaced wrote (so moving to
// @bufbuild/protobuf's BinaryWriter changed no model file), framed so a protobuf reader finds every
// field, with large inline tensors passed through in place rather than copied.
import { createHash } from 'node:crypto';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { describe, expect, it } from 'vitest';
import {
  attr,
  GraphBuilder,
  OnnxType,
  serializeModel,
  serializeModelChunks,
  type ModelOptions,
} from './onnx-graph';

const OPTIONS: ModelOptions = {
  opsets: { '': 17, 'com.microsoft': 1 },
  producerVersion: 'spec',
  docString: 'dóc',
  metadata: { a: 'b', ключ: 'значение' },
};

/** 1.2 MB: above the size from which inline tensors are passed through as chunks of their own. */
const bigWeight = (): Float32Array => Float32Array.from({ length: 512 * 600 }, (_, i) => (i % 97) / 7);

/** Every attribute kind, negative and 64-bit ints, non-ASCII text, lengths over 127 bytes, tensors of each size. */
function graph(big = bigWeight()): GraphBuilder {
  const g = new GraphBuilder('graph-ü');
  const x = g.input('x', OnnxType.FLOAT, ['batch', 3, 'n'.repeat(200)], 'input — ✓');
  const small = g.floatInit('w_small', [4], new Float32Array([1, -2.5, 3e-8, -0]));
  const mid = g.floatInit(
    'w_mid',
    [64, 64],
    Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i)),
  );
  const w = g.floatInit('w_big', [512, 600], big);
  const ints = g.int64s([-1, 0, 2 ** 40, -(2 ** 40), 127, 128, 16383, 16384]);
  const bytes = g.initializer(
    'u8',
    OnnxType.UINT8,
    [3000],
    Uint8Array.from({ length: 3000 }, (_, i) => i & 255),
  );
  const scalar = g.initializer('scalar', OnnxType.INT32, [], new Uint8Array(4));
  const a = g.op1('Add', [x, small], {
    i: attr.int(-7),
    big: attr.int(2 ** 45),
    f: attr.float(-Infinity),
    fl: attr.floats([0.1, -1e-30, Infinity, NaN]),
    is: attr.ints([-1, 0, 1, 300, -(2 ** 50)]),
    s: attr.string('mode–✓'.repeat(40)),
    none: attr.ints([]),
  });
  const m = g.op1(
    'MatMul',
    [a, mid, w, ints, bytes, scalar],
    { long: attr.string('x'.repeat(300)) },
    'com.microsoft',
  );
  const [y, z] = g.op('Split', [m], { outputs: 2, name: 'split' });
  g.output(y!, 'y', OnnxType.FLOAT, ['batch', 7]);
  g.output(z!, 'z', OnnxType.FLOAT16, [], 'doc z');
  return g;
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Field numbers of a message in order, and the payload of each length-delimited one. */
function fields(bytes: Uint8Array): { field: number; payload?: Uint8Array }[] {
  const reader = new BinaryReader(bytes);
  const out: { field: number; payload?: Uint8Array }[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (wireType === WireType.LengthDelimited) {
      out.push({ field, payload: reader.bytes() });
    } else {
      out.push({ field });
      reader.skip(wireType);
    }
  }
  return out;
}

describe('serializeModel', () => {
  it('writes the bytes the former hand-written encoder wrote', () => {
    expect(sha256(serializeModel(graph(), OPTIONS))).toBe(
      '7a7bc85c655832c531773050cc535a8dda32af5f167cede47782eb7fbde6e7b0',
    );
  });

  it('frames the ModelProto so a protobuf reader finds every field', () => {
    const model = fields(serializeModel(graph(), OPTIONS));
    expect(model.map((f) => f.field)).toEqual([1, 2, 3, 6, 7, 8, 8, 14, 14]);
    const graphFields = fields(model.find((f) => f.field === 7)!.payload!);
    // 5 nodes (Add, MatMul, Split and the two Identity outputs), a name, 6 initializers, 1 input, 2 outputs.
    expect(graphFields.map((f) => f.field)).toEqual([1, 1, 1, 1, 1, 2, 5, 5, 5, 5, 5, 5, 11, 12, 12]);
    const big = graphFields.filter((f) => f.field === 5).map((f) => fields(f.payload!))[2]!;
    expect(big.map((f) => f.field)).toEqual([1, 2, 8, 9]);
    expect(new TextDecoder().decode(big[2]!.payload)).toBe('w_big');
    expect(sha256(big[3]!.payload!)).toBe(sha256(new Uint8Array(bigWeight().buffer)));
  });

  it('passes large inline tensors through as chunks of their own instead of copying them', () => {
    const big = bigWeight();
    const chunks = serializeModelChunks(graph(big), OPTIONS);
    expect(chunks.filter((c) => c.buffer === big.buffer)).toHaveLength(1);
    const joined = Buffer.concat(chunks);
    expect(sha256(joined)).toBe(sha256(serializeModel(graph(big), OPTIONS)));
  });
});

const text = (bytes: Uint8Array | undefined): string => new TextDecoder().decode(bytes);

/** A graph's node op types (and `Op→outputs`), inputs, outputs and initializers, read back from its bytes. */
function summary(g: GraphBuilder): {
  ops: string[];
  nodes: string[];
  inputs: string[];
  outputs: string[];
  initializers: string[];
} {
  const model = fields(serializeModel(g, OPTIONS));
  const parts = fields(model.find((f) => f.field === 7)!.payload!);
  const named = (field: number, nameField: number): string[] =>
    parts
      .filter((f) => f.field === field)
      .map((f) => text(fields(f.payload!).find((x) => x.field === nameField)!.payload));
  const nodes = parts
    .filter((f) => f.field === 1)
    .map((f) => {
      const node = fields(f.payload!);
      const outs = node.filter((x) => x.field === 2).map((x) => text(x.payload));
      return `${text(node.find((x) => x.field === 4)!.payload)}→${outs.join(',')}`;
    });
  return {
    ops: named(1, 4),
    nodes,
    inputs: named(11, 1),
    outputs: named(12, 1),
    initializers: named(5, 8),
  };
}

/** x → Neg (`n`) → + a 1.2 MB weight → y: a variant that keeps the weight must not copy it. */
function bigWeightGraph(): { g: GraphBuilder; x: string; big: Float32Array } {
  const big = bigWeight();
  const g = new GraphBuilder('g');
  const x = g.input('x', OnnxType.FLOAT, [512, 600]);
  const [n] = g.op('Neg', [x], { outputs: ['n'] });
  g.output(g.op1('Add', [n!, g.floatInit('big', [512, 600], big)]), 'y', OnnxType.FLOAT, [512, 600]);
  return { g, x, big };
}

describe('GraphBuilder.feeding', () => {
  /** x → Slice (named window) → Add a bias → y; the bias is big enough to go to the sink. */
  function sliced(): { g: GraphBuilder; sliceOnly: string } {
    const g = new GraphBuilder('sliced');
    const x = g.input('x', OnnxType.FLOAT, ['n', 8]);
    const n = g.input('n', OnnxType.INT64, [1]);
    const sliceOnly = g.int64s([0]);
    const [window] = g.op('Slice', [x, sliceOnly, n, sliceOnly], { outputs: ['window'] });
    const bias = g.floatInit('bias', [8, 64], new Float32Array(512).fill(1));
    const y = g.op1('Add', [
      g.op1('ReduceSum', [window!, g.int64s([-2])]),
      g.op1('Cast', [g.op1('Reshape', [n, g.int64s([1, 1])])], { to: attr.int(OnnxType.FLOAT) }),
    ]);
    g.output(g.op1('Add', [y, g.op1('ReduceSum', [bias, g.int64s([1])])]), 'y', OnnxType.FLOAT, [1, 8]);
    return { g, sliceOnly };
  }

  it('takes the value as an input and leaves out what only served to compute it', () => {
    const { g, sliceOnly } = sliced();
    const fed = g.feeding([{ name: 'window', elemType: OnnxType.FLOAT, dims: ['m', 8] }], 'fed');
    const before = summary(g);
    const after = summary(fed);
    expect(before.ops.filter((op) => op === 'Slice')).toHaveLength(1);
    expect(after.ops).not.toContain('Slice');
    expect(after.ops).toEqual(before.ops.filter((op) => op !== 'Slice'));
    // x fed only the Slice; n still makes y
    expect(after.inputs).toEqual(['n', 'window']);
    // the Slice's starts/axes constant is gone, the ReduceSum axes and the weights stay
    expect(after.initializers).toEqual(before.initializers.filter((name) => name !== sliceOnly));
    expect(after.initializers).toHaveLength(4);
    // the source graph is unchanged
    expect(summary(g)).toEqual(before);
  });

  it('shares the initializers rather than copying them', () => {
    const { g, big } = bigWeightGraph();
    const fed = g.feeding([{ name: 'n', elemType: OnnxType.FLOAT, dims: [512, 600] }]);
    expect(serializeModelChunks(fed, OPTIONS).filter((c) => c.buffer === big.buffer)).toHaveLength(1);
  });

  it('refuses a value the graph does not compute, or one whose node is still needed', () => {
    const { g } = sliced();
    expect(() => g.feeding([{ name: 'x', elemType: OnnxType.FLOAT, dims: [8] }])).toThrow(
      /x is not a value computed/,
    );
    const h = new GraphBuilder('h');
    const x = h.input('x', OnnxType.FLOAT, [2]);
    const [a, b] = h.op('Split', [x], { outputs: ['a', 'b'] });
    h.output(h.op1('Add', [a!, b!]), 'y', OnnxType.FLOAT, [1]);
    expect(() => h.feeding([{ name: 'a', elemType: OnnxType.FLOAT, dims: [1] }])).toThrow(/a cannot be fed/);
  });
});

describe('GraphBuilder.rewriting', () => {
  /** x → Neg (a) → Mul by w → (m) → Add 1 → y, and a second output z = Abs(a) with its own weight. */
  function chain(): GraphBuilder {
    const g = new GraphBuilder('chain');
    const x = g.input('x', OnnxType.FLOAT, [4]);
    const scale = g.input('scale', OnnxType.FLOAT, [4]);
    const [a] = g.op('Neg', [x], { outputs: ['a'] });
    g.mark('a', a!);
    const [m] = g.op('Mul', [a!, g.op1('Mul', [g.floatInit('w', [4], new Float32Array(4).fill(2)), scale])], {
      outputs: ['m'],
    });
    g.op('Add', [m!, g.floats([1], [])], { outputs: ['y'] });
    g.output('y', 'y', OnnxType.FLOAT, [4]);
    g.op('Abs', [g.op1('Add', [a!, g.floatInit('v', [4], new Float32Array(4))])], { outputs: ['z'] });
    g.output('z', 'z', OnnxType.FLOAT, [4]);
    return g;
  }

  it('makes a value with new nodes, after the nodes it reads, and leaves out what nothing needs', () => {
    const g = chain();
    const before = summary(g);
    const r = g.rewriting('rewritten', (e) => {
      e.redefine(['m']);
      e.dropOutputs(['z']);
      const k = e.input('k', OnnxType.FLOAT, [4]);
      e.op('Sub', [e.marked('a'), k], { outputs: ['m'] });
    });
    const after = summary(r);
    // the Sub that makes m comes before the Add that reads it, after the Neg it reads
    expect(after.nodes).toEqual(['Neg→a', 'Sub→m', 'Add→y']);
    // scale and the weights fed only the dropped Mul and the dropped output
    expect(after.inputs).toEqual(['x', 'k']);
    expect(after.outputs).toEqual(['y']);
    expect(after.initializers).toHaveLength(1);
    expect(after.initializers).not.toContain('w');
    expect(after.initializers).not.toContain('v');
    // the source graph is unchanged
    expect(summary(g)).toEqual(before);
  });

  it('shares the initializers it keeps rather than copying them', () => {
    const { g, x, big } = bigWeightGraph();
    const r = g.rewriting('r', (e) => {
      e.redefine(['n']);
      e.op('Abs', [x], { outputs: ['n'] });
    });
    expect(serializeModelChunks(r, OPTIONS).filter((c) => c.buffer === big.buffer)).toHaveLength(1);
  });

  it('refuses to redefine part of a node, a value nothing makes, or to leave a value unmade', () => {
    const h = new GraphBuilder('h');
    const x = h.input('x', OnnxType.FLOAT, [2]);
    const [a, b] = h.op('Split', [x], { outputs: ['a', 'b'] });
    h.output(h.op1('Add', [a!, b!]), 'y', OnnxType.FLOAT, [1]);
    expect(() => h.rewriting('r', (e) => e.redefine(['a']))).toThrow(/also makes b/);
    expect(() => h.rewriting('r', (e) => e.redefine(['x']))).toThrow(/x is not a value computed/);
    expect(() => h.rewriting('r', (e) => e.redefine(['a', 'b']))).toThrow(/nothing makes a/);
    expect(() => h.rewriting('r', (e) => e.dropOutputs(['q']))).toThrow(/no output q/);
    expect(() => h.marked('nothing')).toThrow(/marks no value "nothing"/);
  });
});
