import { ProtoWriter } from './proto-writer';

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

  get initializerBytes(): number {
    return this.initializers.reduce(
      (n, i) => n + (i.data.kind === 'inline' ? i.data.bytes.byteLength : i.data.length),
      0,
    );
  }

  /** Serializes the graph into GraphProto fields of `w`. */
  writeGraph(w: ProtoWriter): void {
    for (const node of this.nodes) w.message(1, (nw) => writeNode(nw, node));
    w.string(2, this.name);
    for (const init of this.initializers) w.message(5, (tw) => writeTensor(tw, init));
    for (const input of this.inputs) w.message(11, (vw) => writeValueInfo(vw, input));
    for (const output of this.outputs) w.message(12, (vw) => writeValueInfo(vw, output));
  }
}

function writeNode(w: ProtoWriter, node: NodeDef): void {
  for (const i of node.inputs) w.string(1, i);
  for (const o of node.outputs) w.string(2, o);
  w.string(3, node.name);
  w.string(4, node.opType);
  for (const [name, value] of Object.entries(node.attrs)) w.message(5, (aw) => writeAttr(aw, name, value));
  if (node.domain !== '') w.string(7, node.domain);
}

function writeAttr(w: ProtoWriter, name: string, value: AttrValue): void {
  w.string(1, name);
  switch (value.kind) {
    case 'float':
      w.float(2, value.value).varint(20, 1);
      break;
    case 'int':
      w.varint(3, value.value).varint(20, 2);
      break;
    case 'string':
      w.string(4, value.value).varint(20, 3);
      break;
    case 'floats':
      w.packedFloats(7, value.value).varint(20, 6);
      break;
    case 'ints':
      w.packedVarints(8, value.value).varint(20, 7);
      break;
  }
}

function writeTensor(w: ProtoWriter, t: InitializerDef): void {
  if (t.dims.length > 0) w.packedVarints(1, t.dims);
  w.varint(2, t.elemType);
  w.string(8, t.name);
  if (t.data.kind === 'inline') {
    w.bytes(9, t.data.bytes);
  } else {
    const entries: [string, string][] = [
      ['location', t.data.location],
      ['offset', String(t.data.offset)],
      ['length', String(t.data.length)],
    ];
    for (const [k, v] of entries) w.message(13, (ew) => ew.string(1, k).string(2, v));
    w.varint(14, 1); // DataLocation.EXTERNAL
  }
}

function writeValueInfo(w: ProtoWriter, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (tw) =>
    tw.message(1, (tt) => {
      tt.varint(1, v.elemType);
      tt.message(2, (sw) => {
        for (const d of v.dims)
          sw.message(1, (dw) => (typeof d === 'number' ? dw.varint(1, d) : dw.string(2, d)));
      });
    }),
  );
  if (v.doc !== undefined) w.string(3, v.doc);
}

export interface ModelOptions {
  readonly irVersion?: number;
  readonly opsets: Readonly<Record<string, number>>;
  readonly producerVersion: string;
  readonly docString?: string;
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Serializes a ModelProto around the graph. */
export function serializeModel(graph: GraphBuilder, options: ModelOptions): Uint8Array {
  const w = new ProtoWriter(1 << 16);
  w.varint(1, options.irVersion ?? 8);
  w.string(2, 'imagebind-llm-model-builder');
  w.string(3, options.producerVersion);
  if (options.docString !== undefined) w.string(6, options.docString);
  w.message(7, (gw) => graph.writeGraph(gw));
  for (const [domain, version] of Object.entries(options.opsets)) {
    w.message(8, (ow) => {
      if (domain !== '') ow.string(1, domain);
      ow.varint(2, version);
    });
  }
  for (const [k, v] of Object.entries(options.metadata ?? {}))
    w.message(14, (ew) => ew.string(1, k).string(2, v));
  return w.finish();
}
