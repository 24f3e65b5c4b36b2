import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

/** ONNX TensorProto.DataType values used by the builders. */
export const OnnxType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
} as const;
export type OnnxType = (typeof OnnxType)[keyof typeof OnnxType];

export const ONNX_TYPE_NAMES: Readonly<Record<OnnxType, string>> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  6: 'int32',
  7: 'int64',
  9: 'bool',
  10: 'float16',
};

const BYTES_PER_ELEMENT: Readonly<Record<OnnxType, number>> = { 1: 4, 2: 1, 3: 1, 6: 4, 7: 8, 9: 1, 10: 2 };

export type Dim = number | string;

export type AttrValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'string'; value: string };

export const attr = {
  int: (value: number): AttrValue => ({ kind: 'int', value }),
  float: (value: number): AttrValue => ({ kind: 'float', value }),
  ints: (value: readonly number[]): AttrValue => ({ kind: 'ints', value }),
  floats: (value: readonly number[]): AttrValue => ({ kind: 'floats', value }),
  string: (value: string): AttrValue => ({ kind: 'string', value }),
};

interface NodeDef {
  readonly opType: string;
  readonly domain: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, AttrValue>>;
}

interface ValueInfo {
  readonly name: string;
  readonly elemType: OnnxType;
  readonly dims: readonly Dim[];
  readonly doc?: string;
}

/** Where an initializer's bytes live in the serialized model. */
export type InitializerData =
  | { readonly kind: 'inline'; readonly bytes: Uint8Array }
  | {
      readonly kind: 'external';
      readonly location: string;
      readonly offset: number;
      readonly length: number;
    };

interface InitializerDef {
  readonly name: string;
  readonly elemType: OnnxType;
  readonly dims: readonly number[];
  readonly data: InitializerData;
}

/**
 * Receives initializer bytes as the builder produces them, so multi-GB weights go straight to disk
 * (ONNX external data) instead of accumulating in memory.
 */
export interface InitializerSink {
  store(name: string, bytes: Uint8Array): InitializerData;
}

/** Keeps every initializer inline in the model protobuf (models well under 2 GB). */
export class InlineSink implements InitializerSink {
  store(_name: string, bytes: Uint8Array): InitializerData {
    return { kind: 'inline', bytes };
  }
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** What GraphBuilder.rewriting's `edit` works on: the variant, which can also replace nodes. */
export interface GraphEditor extends GraphBuilder {
  /** Drops the nodes that make `values` (all of each node's outputs), for new nodes to make them. */
  redefine(values: readonly string[]): void;
  dropOutputs(names: readonly string[]): void;
}

/**
 * Builds an ONNX graph: inputs, outputs, initializers (bytes handed to a sink) and nodes with
 * generated unique names. `op()` returns the output names so graphs read like expressions.
 */
export class GraphBuilder {
  private readonly nodes: NodeDef[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly initializers: InitializerDef[] = [];
  private readonly names = new Set<string>();
  private counter = 0;
  private readonly constCache = new Map<string, string>();
  /** Values noted under a key (mark): how a variant finds a value the builder named freshly. */
  private readonly marks = new Map<string, string>();

  constructor(
    readonly name: string,
    private readonly sink: InitializerSink = new InlineSink(),
  ) {}

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`duplicate value name ${name} in graph ${this.name}`);
    this.names.add(name);
    return name;
  }

  /** A name no value uses yet (not reserved: pass it to something that claims it). */
  uniqueName(hint: string): string {
    let name: string;
    do name = `${hint}_${this.counter++}`;
    while (this.names.has(name));
    return name;
  }

  fresh(hint: string): string {
    return this.claim(this.uniqueName(hint));
  }

  input(name: string, elemType: OnnxType, dims: readonly Dim[], doc?: string): string {
    this.inputs.push({ name: this.claim(name), elemType, dims, ...(doc === undefined ? {} : { doc }) });
    return name;
  }

  /** Declares a graph output produced by an existing value (inserts an Identity when renamed). */
  output(value: string, name: string, elemType: OnnxType, dims: readonly Dim[], doc?: string): void {
    if (value !== name) this.op('Identity', [value], { outputs: [name] });
    this.outputs.push({ name, elemType, dims, ...(doc === undefined ? {} : { doc }) });
  }

  initializer(name: string, elemType: OnnxType, dims: readonly number[], bytes: Uint8Array): string {
    const expected = elementCount(dims) * BYTES_PER_ELEMENT[elemType];
    if (bytes.byteLength !== expected) {
      throw new Error(
        `initializer ${name}: ${bytes.byteLength} bytes for dims [${dims.join(',')}], expected ${expected}`,
      );
    }
    // Small tensors (shape constants, scalars) stay inline: onnxruntime's shape inference reads
    // them at load time and cannot look into external data (the same 1 KiB cut as onnx's tools).
    const data: InitializerData =
      bytes.byteLength < 1024 ? { kind: 'inline', bytes } : this.sink.store(name, bytes);
    this.initializers.push({ name: this.claim(name), elemType, dims, data });
    return name;
  }

  floatInit(name: string, dims: readonly number[], values: Float32Array): string {
    return this.initializer(
      name,
      OnnxType.FLOAT,
      dims,
      new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    );
  }

  /** A small int64 constant, deduplicated. */
  int64s(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `i64:${dims.join('x')}:${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit !== undefined) return hit;
    const data = new BigInt64Array(values.map((v) => BigInt(v)));
    const name = this.initializer(
      this.uniqueName('const_i64'),
      OnnxType.INT64,
      dims,
      new Uint8Array(data.buffer),
    );
    this.constCache.set(key, name);
    return name;
  }

  /** A small float32 constant, deduplicated. */
  floats(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `f32:${dims.join('x')}:${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit !== undefined) return hit;
    const name = this.floatInit(this.uniqueName('const_f32'), dims, new Float32Array(values));
    this.constCache.set(key, name);
    return name;
  }

  op(
    opType: string,
    inputs: readonly string[],
    options: {
      outputs?: readonly string[] | number;
      attrs?: Record<string, AttrValue>;
      domain?: string;
      name?: string;
    } = {},
  ): string[] {
    const outs =
      typeof options.outputs === 'number' || options.outputs === undefined
        ? Array.from({ length: typeof options.outputs === 'number' ? options.outputs : 1 }, () =>
            this.fresh(opType.toLowerCase()),
          )
        : options.outputs.map((n) => this.claim(n));
    this.nodes.push({
      opType,
      domain: options.domain ?? '',
      name: options.name ?? this.fresh(`n_${opType}`),
      inputs,
      outputs: outs,
      attrs: options.attrs ?? {},
    });
    return outs;
  }

  /** Shorthand for single-output ops. */
  op1(opType: string, inputs: readonly string[], attrs?: Record<string, AttrValue>, domain?: string): string {
    const [out] = this.op(opType, inputs, {
      ...(attrs === undefined ? {} : { attrs }),
      ...(domain === undefined ? {} : { domain }),
    });
    return out!;
  }

  /**
   * A variant of this graph in which the values `fed` are graph inputs instead of computed: each
   * becomes an input of its own name, and the nodes, inputs and initializers that nothing needs any
   * more are left out. The initializers kept are this graph's own (their bytes, or their place in
   * an external-data file, are shared, never copied), so a variant written beside this graph can
   * point at the same weights file.
   */
  feeding(
    fed: readonly { name: string; elemType: OnnxType; dims: readonly Dim[] }[],
    name = this.name,
  ): GraphBuilder {
    const fedNames = new Set(fed.map((v) => v.name));
    const producer = new Map<string, NodeDef>();
    for (const node of this.nodes) for (const o of node.outputs) producer.set(o, node);
    for (const v of fed) {
      if (!producer.has(v.name)) throw new Error(`${v.name} is not a value computed in graph ${this.name}`);
    }
    // Walk back from the outputs, stopping at the fed values.
    const needed = new Set<string>();
    const live = new Set<NodeDef>();
    const stack = this.outputs.map((o) => o.name);
    while (stack.length > 0) {
      const value = stack.pop()!;
      if (needed.has(value)) continue;
      needed.add(value);
      const node = fedNames.has(value) ? undefined : producer.get(value);
      if (node === undefined || live.has(node)) continue;
      live.add(node);
      stack.push(...node.inputs.filter((i) => i !== ''));
    }
    for (const node of live) {
      const clash = node.outputs.find((o) => fedNames.has(o));
      if (clash !== undefined)
        throw new Error(`${clash} cannot be fed: node ${node.name} that makes it is still needed`);
    }
    const g = new GraphBuilder(name, this.sink);
    g.nodes.push(...this.nodes.filter((n) => live.has(n)));
    g.inputs.push(
      ...this.inputs.filter((i) => needed.has(i.name)),
      ...fed.map((v) => ({ name: v.name, elemType: v.elemType, dims: v.dims })),
    );
    g.outputs.push(...this.outputs);
    g.initializers.push(...this.initializers.filter((i) => needed.has(i.name)));
    for (const n of this.names) g.names.add(n);
    g.counter = this.counter;
    return g;
  }

  /** Notes value `value` under `key`, for variants of this graph to find it (`marked`). */
  mark(key: string, value: string): string {
    this.marks.set(key, value);
    return value;
  }

  marked(key: string): string {
    const value = this.marks.get(key);
    if (value === undefined) throw new Error(`graph ${this.name} marks no value "${key}"`);
    return value;
  }

  /**
   * A variant of this graph that `edit` changes through the editor it is given: it may make values
   * with new nodes in place of the nodes that made them (`redefine`), drop outputs, and add
   * inputs, initializers and nodes as on any builder. The variant then keeps only what its outputs
   * need, its nodes in dependency order; the initializers kept are this graph's own (shared, as in
   * `feeding`), and this graph is left unchanged.
   */
  rewriting(name: string, edit: (g: GraphEditor) => void): GraphBuilder {
    const g = new GraphBuilder(name, this.sink);
    g.nodes.push(...this.nodes);
    g.inputs.push(...this.inputs);
    g.outputs.push(...this.outputs);
    g.initializers.push(...this.initializers);
    for (const n of this.names) g.names.add(n);
    for (const [k, v] of this.constCache) g.constCache.set(k, v);
    for (const [k, v] of this.marks) g.marks.set(k, v);
    g.counter = this.counter;
    edit(
      Object.assign(g, {
        redefine: (values: readonly string[]): void => g.unmake(values),
        dropOutputs: (names: readonly string[]): void => {
          for (const n of names) {
            const at = g.outputs.findIndex((o) => o.name === n);
            if (at < 0) throw new Error(`graph ${this.name} has no output ${n}`);
            g.outputs.splice(at, 1);
          }
        },
      }),
    );
    g.prune();
    return g;
  }

  /** Drops the nodes that make `values` and frees those names for the nodes that will make them. */
  private unmake(values: readonly string[]): void {
    const set = new Set(values);
    const dropped = new Set<NodeDef>();
    for (const value of values) {
      const node = this.nodes.find((n) => n.outputs.includes(value));
      if (node === undefined) throw new Error(`${value} is not a value computed in graph ${this.name}`);
      const other = node.outputs.find((o) => !set.has(o));
      if (other !== undefined)
        throw new Error(`node ${node.name} also makes ${other}: redefine all of its outputs or none`);
      dropped.add(node);
    }
    this.nodes.splice(0, this.nodes.length, ...this.nodes.filter((n) => !dropped.has(n)));
    for (const value of values) this.names.delete(value);
  }

  /** Keeps what the outputs need, every node after the nodes that make its inputs. */
  private prune(): void {
    const producer = new Map<string, NodeDef>();
    for (const node of this.nodes) for (const o of node.outputs) producer.set(o, node);
    const needed = new Set<string>();
    const ordered: NodeDef[] = [];
    const state = new Map<NodeDef, 'visiting' | 'done'>();
    const visit = (value: string): void => {
      needed.add(value);
      const node = producer.get(value);
      if (node === undefined || state.get(node) === 'done') return;
      if (state.get(node) === 'visiting') throw new Error(`graph ${this.name} has a cycle through ${value}`);
      state.set(node, 'visiting');
      for (const i of node.inputs) if (i !== '') visit(i);
      state.set(node, 'done');
      ordered.push(node);
    };
    for (const o of this.outputs) visit(o.name);
    const defined = new Set([
      ...producer.keys(),
      ...this.inputs.map((i) => i.name),
      ...this.initializers.map((i) => i.name),
    ]);
    const missing = [...needed].find((v) => !defined.has(v));
    if (missing !== undefined) throw new Error(`graph ${this.name}: nothing makes ${missing}`);
    this.nodes.splice(0, this.nodes.length, ...ordered);
    const keptInputs = this.inputs.filter((i) => needed.has(i.name));
    this.inputs.splice(0, this.inputs.length, ...keptInputs);
    const keptInits = this.initializers.filter((i) => needed.has(i.name));
    this.initializers.splice(0, this.initializers.length, ...keptInits);
  }

  get initializerBytes(): number {
    return this.initializers.reduce(
      (n, i) => n + (i.data.kind === 'inline' ? i.data.bytes.byteLength : i.data.length),
      0,
    );
  }

  /**
   * The GraphProto's bytes, in order, as chunks: the framing from BinaryWriter, and each large
   * inline payload as the caller's own array rather than a copy (see SPLICE_BYTES).
   */
  graphProtoChunks(): Uint8Array[] {
    const chunks: Uint8Array[] = [];
    const w = new BinaryWriter();
    for (const node of this.nodes) message(w, Graph.node, () => writeNode(w, node));
    w.tag(Graph.name, LEN).string(this.name);
    for (const init of this.initializers) {
      if (init.data.kind === 'inline' && init.data.bytes.byteLength >= SPLICE_BYTES) {
        // raw_data is the tensor's last field: frame everything before the payload, then the payload.
        const head = new BinaryWriter();
        writeTensorFields(head, init);
        head.tag(Tensor.rawData, LEN).uint32(init.data.bytes.byteLength);
        const header = head.finish();
        w.tag(Graph.initializer, LEN)
          .uint32(header.byteLength + init.data.bytes.byteLength)
          .raw(header);
        chunks.push(w.finish(), init.data.bytes);
      } else {
        message(w, Graph.initializer, () => writeTensor(w, init));
      }
    }
    for (const input of this.inputs) message(w, Graph.input, () => writeValueInfo(w, input));
    for (const output of this.outputs) message(w, Graph.output, () => writeValueInfo(w, output));
    chunks.push(w.finish());
    return chunks;
  }
}

// ---------------------------------------------------------------------------------------------
// onnx.proto serialization. @bufbuild/protobuf's BinaryWriter does the wire format; the field
// numbers below are onnx.proto's (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto), and
// fields are written in field-number order, as protobuf's own serializers do. Not message types
// generated from onnx.proto: their encoder would need every tensor inside a message object and
// would copy all of them into one buffer, where here large ones are passed through (SPLICE_BYTES).

const LEN = WireType.LengthDelimited;
const VARINT = WireType.Varint;
const I32 = WireType.Bit32;

const Model = {
  irVersion: 1,
  producerName: 2,
  producerVersion: 3,
  docString: 6,
  graph: 7,
  opsetImport: 8,
  metadataProps: 14,
} as const;
const Graph = { node: 1, name: 2, initializer: 5, input: 11, output: 12 } as const;
const Node = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const Attribute = { name: 1, f: 2, i: 3, s: 4, floats: 7, ints: 8, type: 20 } as const;
/** `AttributeProto.AttributeType`. */
const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;
const Tensor = { dims: 1, dataType: 2, name: 8, rawData: 9, externalData: 13, dataLocation: 14 } as const;
/** `TensorProto.DataLocation`. */
const DATA_LOCATION_EXTERNAL = 1;
const StringStringEntry = { key: 1, value: 2 } as const;
const ValueInfo = { name: 1, type: 2, docString: 3 } as const;
const TypeProto = { tensorType: 1 } as const;
const TypeTensor = { elemType: 1, shape: 2 } as const;
const TensorShape = { dim: 1 } as const;
const Dimension = { dimValue: 1, dimParam: 2 } as const;
const OperatorSetId = { domain: 1, version: 2 } as const;

/**
 * Inline initializers at least this large are not copied into the BinaryWriter: they go out as
 * chunks of their own (serializeModelChunks), so a model of up to 2 GB inline weights is not
 * copied (and its buffer doubled) on the way to disk. Smaller ones are cheaper to copy.
 */
const SPLICE_BYTES = 64 * 1024;

/** A length-delimited sub-message; BinaryWriter's fork/join writes its length. */
function message(w: BinaryWriter, field: number, body: () => void): void {
  w.tag(field, LEN).fork();
  body();
  w.join();
}

function writeNode(w: BinaryWriter, node: NodeDef): void {
  for (const i of node.inputs) w.tag(Node.input, LEN).string(i);
  for (const o of node.outputs) w.tag(Node.output, LEN).string(o);
  w.tag(Node.name, LEN).string(node.name);
  w.tag(Node.opType, LEN).string(node.opType);
  for (const [name, value] of Object.entries(node.attrs)) {
    message(w, Node.attribute, () => writeAttr(w, name, value));
  }
  if (node.domain !== '') w.tag(Node.domain, LEN).string(node.domain);
}

function writeAttr(w: BinaryWriter, name: string, value: AttrValue): void {
  w.tag(Attribute.name, LEN).string(name);
  switch (value.kind) {
    case 'float':
      w.tag(Attribute.f, I32).float(value.value);
      w.tag(Attribute.type, VARINT).int32(AttributeType.FLOAT);
      break;
    case 'int':
      w.tag(Attribute.i, VARINT).int64(value.value);
      w.tag(Attribute.type, VARINT).int32(AttributeType.INT);
      break;
    case 'string':
      w.tag(Attribute.s, LEN).string(value.value);
      w.tag(Attribute.type, VARINT).int32(AttributeType.STRING);
      break;
    case 'floats':
      w.tag(Attribute.floats, LEN).fork();
      for (const v of value.value) w.float(v);
      w.join();
      w.tag(Attribute.type, VARINT).int32(AttributeType.FLOATS);
      break;
    case 'ints':
      w.tag(Attribute.ints, LEN).fork();
      for (const v of value.value) w.int64(v);
      w.join();
      w.tag(Attribute.type, VARINT).int32(AttributeType.INTS);
      break;
  }
}

/** The TensorProto fields that come before its data. */
function writeTensorFields(w: BinaryWriter, t: InitializerDef): void {
  if (t.dims.length > 0) {
    w.tag(Tensor.dims, LEN).fork();
    for (const d of t.dims) w.int64(d);
    w.join();
  }
  w.tag(Tensor.dataType, VARINT).int32(t.elemType);
  w.tag(Tensor.name, LEN).string(t.name);
}

function writeTensor(w: BinaryWriter, t: InitializerDef): void {
  writeTensorFields(w, t);
  if (t.data.kind === 'inline') {
    w.tag(Tensor.rawData, LEN).bytes(t.data.bytes);
  } else {
    const entries: [string, string][] = [
      ['location', t.data.location],
      ['offset', String(t.data.offset)],
      ['length', String(t.data.length)],
    ];
    for (const [k, v] of entries) message(w, Tensor.externalData, () => writeEntry(w, k, v));
    w.tag(Tensor.dataLocation, VARINT).int32(DATA_LOCATION_EXTERNAL);
  }
}

function writeEntry(w: BinaryWriter, key: string, value: string): void {
  w.tag(StringStringEntry.key, LEN).string(key);
  w.tag(StringStringEntry.value, LEN).string(value);
}

function writeValueInfo(w: BinaryWriter, v: ValueInfo): void {
  w.tag(ValueInfo.name, LEN).string(v.name);
  message(w, ValueInfo.type, () =>
    message(w, TypeProto.tensorType, () => {
      w.tag(TypeTensor.elemType, VARINT).int32(v.elemType);
      message(w, TypeTensor.shape, () => {
        for (const d of v.dims) {
          message(w, TensorShape.dim, () => {
            if (typeof d === 'number') w.tag(Dimension.dimValue, VARINT).int64(d);
            else w.tag(Dimension.dimParam, LEN).string(d);
          });
        }
      });
    }),
  );
  if (v.doc !== undefined) w.tag(ValueInfo.docString, LEN).string(v.doc);
}

export interface ModelOptions {
  readonly irVersion?: number;
  readonly opsets: Readonly<Record<string, number>>;
  readonly producerVersion: string;
  readonly docString?: string;
  readonly metadata?: Readonly<Record<string, string>>;
}

/**
 * A ModelProto around the graph, as chunks to be written one after another (large inline
 * initializers are the builder's own arrays, not copies). Joined, they are `serializeModel`.
 */
export function serializeModelChunks(graph: GraphBuilder, options: ModelOptions): Uint8Array[] {
  const graphChunks = graph.graphProtoChunks();
  const graphBytes = graphChunks.reduce((n, c) => n + c.byteLength, 0);
  const head = new BinaryWriter();
  head.tag(Model.irVersion, VARINT).int64(options.irVersion ?? 8);
  head.tag(Model.producerName, LEN).string('imagebind-llm-model-builder');
  head.tag(Model.producerVersion, LEN).string(options.producerVersion);
  if (options.docString !== undefined) head.tag(Model.docString, LEN).string(options.docString);
  head.tag(Model.graph, LEN).uint32(graphBytes);
  const tail = new BinaryWriter();
  for (const [domain, version] of Object.entries(options.opsets)) {
    message(tail, Model.opsetImport, () => {
      if (domain !== '') tail.tag(OperatorSetId.domain, LEN).string(domain);
      tail.tag(OperatorSetId.version, VARINT).int64(version);
    });
  }
  for (const [k, v] of Object.entries(options.metadata ?? {})) {
    message(tail, Model.metadataProps, () => writeEntry(tail, k, v));
  }
  return [head.finish(), ...graphChunks, tail.finish()];
}

/** Serializes a ModelProto around the graph into one array. */
export function serializeModel(graph: GraphBuilder, options: ModelOptions): Uint8Array {
  const chunks = serializeModelChunks(graph, options);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
