import { CheckpointFormatError } from './checkpoint.error';

/**
 * A pickle interpreter that only builds data: globals are never resolved to code. Python values map
 * to JS as: None → null, bool → boolean, int → number (bigint beyond 2^53), float → number,
 * str → string, bytes/bytearray → Uint8Array, list → array, tuple → frozen array, dict and
 * OrderedDict → Map, set/frozenset → Set; anything else becomes a {@link PickleObject} placeholder.
 */

/** A `module.name` reference as found by GLOBAL / STACK_GLOBAL / INST. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}

  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * An instance of a class this reader does not know (argparse.Namespace, a training config, ...):
 * kept as inert data so that loading never fails because of unrelated pickled objects.
 */
export class PickleObject {
  /** BUILD state (usually the instance `__dict__`). */
  state: unknown = undefined;
  /** Items appended / set on the object when it subclasses list or dict. */
  readonly listItems: unknown[] = [];
  readonly dictItems = new Map<unknown, unknown>();

  constructor(
    readonly type: PickleGlobal,
    readonly args: readonly unknown[],
  ) {}
}

/** Returned by a reduce hook that leaves the call to the default handling. */
export const NOT_HANDLED: unique symbol = Symbol('NOT_HANDLED');

export interface PickleHooks {
  /** BINPERSID / PERSID: resolve a persistent id (torch storages). */
  readonly persistentLoad?: (pid: unknown) => unknown;
  /** REDUCE / NEWOBJ on a global; return NOT_HANDLED to fall back to the defaults. */
  readonly reduce?: (callable: PickleGlobal, args: readonly unknown[]) => unknown;
}

export interface UnpickleOptions {
  /** Names the source in errors, e.g. `model.pth:archive/data.pkl`. */
  readonly source: string;
  readonly hooks?: PickleHooks;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function normaliseInt(value: bigint): number | bigint {
  return value <= MAX_SAFE && value >= -MAX_SAFE ? Number(value) : value;
}

function tuple(items: unknown[]): readonly unknown[] {
  return Object.freeze(items);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

class Unpickler {
  private pos = 0;
  private stack: unknown[] = [];
  private readonly metastack: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly view: DataView;

  constructor(
    private readonly data: Uint8Array,
    private readonly options: UnpickleOptions,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  run(): unknown {
    for (;;) {
      const at = this.pos;
      const op = this.u8();
      switch (op) {
        case 0x80: {
          // PROTO
          const protocol = this.u8();
          if (protocol > 5) this.fail(at, `unsupported pickle protocol ${protocol}`);
          break;
        }
        case 0x95: // FRAME: framing only groups opcodes, the stream is already in memory
          this.take(8);
          break;
        case 0x2e: // STOP
          if (this.stack.length !== 1 || this.metastack.length !== 0) {
            this.fail(at, `STOP with ${this.stack.length} values on the stack (corrupt pickle)`);
          }
          return this.stack[0];
        case 0x28: // MARK
          this.metastack.push(this.stack);
          this.stack = [];
          break;
        case 0x30: // POP
          if (this.stack.length > 0) this.pop(at);
          else this.popMark(at);
          break;
        case 0x31: // POP_MARK
          this.popMark(at);
          break;
        case 0x32: // DUP
          this.push(this.top(at));
          break;
        case 0x4e: // NONE
          this.push(null);
          break;
        case 0x88: // NEWTRUE
          this.push(true);
          break;
        case 0x89: // NEWFALSE
          this.push(false);
          break;
        case 0x4a: // BININT
          this.push(this.view.getInt32(this.advance(4), true));
          break;
        case 0x4b: // BININT1
          this.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.push(this.view.getUint16(this.advance(2), true));
          break;
        case 0x8a: // LONG1
          this.push(this.decodeLong(this.take(this.u8())));
          break;
        case 0x8b: {
          // LONG4
          const n = this.view.getInt32(this.advance(4), true);
          if (n < 0) this.fail(at, 'negative LONG4 length');
          this.push(this.decodeLong(this.take(n)));
          break;
        }
        case 0x49: {
          // INT (text); protocol 0 spells booleans as I01 / I00
          const line = this.line();
          if (line === '01') this.push(true);
          else if (line === '00') this.push(false);
          else this.push(this.parseIntText(at, line));
          break;
        }
        case 0x4c: // LONG (text)
          this.push(this.parseIntText(at, this.line().replace(/L$/, '')));
          break;
        case 0x46: // FLOAT (text)
          this.push(Number.parseFloat(this.line()));
          break;
        case 0x47: // BINFLOAT: big-endian, unlike every other binary opcode
          this.push(this.view.getFloat64(this.advance(8), false));
          break;
        case 0x58: // BINUNICODE
          this.push(this.text(at, this.take(this.u32())));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.push(this.text(at, this.take(this.u8())));
          break;
        case 0x8d: // BINUNICODE8
          this.push(this.text(at, this.take(this.u64(at))));
          break;
        case 0x56: // UNICODE (raw-unicode-escape text)
          this.push(this.rawUnicodeEscape(this.line()));
          break;
        case 0x53: // STRING (quoted Python 2 str)
          this.push(this.pythonStringLiteral(at, this.line()));
          break;
        case 0x54: // BINSTRING (Python 2 str; torch never relies on its encoding)
          this.push(latin1.decode(this.take(this.view.getInt32(this.advance(4), true))));
          break;
        case 0x55: // SHORT_BINSTRING
          this.push(latin1.decode(this.take(this.u8())));
          break;
        case 0x42: // BINBYTES
          this.push(this.take(this.u32()).slice());
          break;
        case 0x43: // SHORT_BINBYTES
          this.push(this.take(this.u8()).slice());
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.push(this.take(this.u64(at)).slice());
          break;
        case 0x97: // NEXT_BUFFER
          this.fail(at, 'out-of-band pickle buffers (protocol 5 NEXT_BUFFER) are not supported');
          break;
        case 0x98: // READONLY_BUFFER
          break;
        case 0x29: // EMPTY_TUPLE
          this.push(tuple([]));
          break;
        case 0x85: // TUPLE1
          this.push(tuple([this.pop(at)]));
          break;
        case 0x86: {
          // TUPLE2
          const b = this.pop(at);
          const a = this.pop(at);
          this.push(tuple([a, b]));
          break;
        }
        case 0x87: {
          // TUPLE3
          const c = this.pop(at);
          const b = this.pop(at);
          const a = this.pop(at);
          this.push(tuple([a, b, c]));
          break;
        }
        case 0x74: // TUPLE
          this.push(tuple(this.popMark(at)));
          break;
        case 0x5d: // EMPTY_LIST
          this.push([]);
          break;
        case 0x6c: // LIST
          this.push(this.popMark(at));
          break;
        case 0x7d: // EMPTY_DICT
          this.push(new Map());
          break;
        case 0x64: {
          // DICT
          const items = this.popMark(at);
          const dict = new Map<unknown, unknown>();
          for (let i = 0; i + 1 < items.length; i += 2) dict.set(items[i], items[i + 1]);
          this.push(dict);
          break;
        }
        case 0x8f: // EMPTY_SET
          this.push(new Set());
          break;
        case 0x90: {
          // ADDITEMS
          const items = this.popMark(at);
          const target = this.top(at);
          if (!(target instanceof Set)) this.fail(at, 'ADDITEMS on a value that is not a set');
          for (const item of items) (target as Set<unknown>).add(item);
          break;
        }
        case 0x91: // FROZENSET
          this.push(new Set(this.popMark(at)));
          break;
        case 0x61: {
          // APPEND
          const value = this.pop(at);
          this.append(at, this.top(at), [value]);
          break;
        }
        case 0x65: {
          // APPENDS
          const values = this.popMark(at);
          this.append(at, this.top(at), values);
          break;
        }
        case 0x73: {
          // SETITEM
          const value = this.pop(at);
          const key = this.pop(at);
          this.setItems(at, this.top(at), [key, value]);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark(at);
          this.setItems(at, this.top(at), items);
          break;
        }
        case 0x71: // BINPUT
          this.memo.set(this.u8(), this.top(at));
          break;
        case 0x72: // LONG_BINPUT
          this.memo.set(this.u32(), this.top(at));
          break;
        case 0x70: // PUT
          this.memo.set(this.parseMemoIndex(at, this.line()), this.top(at));
          break;
        case 0x94: // MEMOIZE
          this.memo.set(this.memo.size, this.top(at));
          break;
        case 0x68: // BINGET
          this.push(this.memoGet(at, this.u8()));
          break;
        case 0x6a: // LONG_BINGET
          this.push(this.memoGet(at, this.u32()));
          break;
        case 0x67: // GET
          this.push(this.memoGet(at, this.parseMemoIndex(at, this.line())));
          break;
        case 0x63: {
          // GLOBAL
          const module = this.line();
          const name = this.line();
          this.push(new PickleGlobal(module, name));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.pop(at);
          const module = this.pop(at);
          if (typeof module !== 'string' || typeof name !== 'string')
            this.fail(at, 'STACK_GLOBAL needs two strings');
          this.push(new PickleGlobal(module, name));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = this.pop(at);
          const callable = this.pop(at);
          this.push(this.call(at, callable, this.asArgs(at, args)));
          break;
        }
        case 0x81: {
          // NEWOBJ
          const args = this.pop(at);
          const cls = this.pop(at);
          this.push(this.call(at, cls, this.asArgs(at, args)));
          break;
        }
        case 0x92: {
          // NEWOBJ_EX (keyword arguments have no meaning for placeholders)
          this.pop(at);
          const args = this.pop(at);
          const cls = this.pop(at);
          this.push(this.call(at, cls, this.asArgs(at, args)));
          break;
        }
        case 0x69: {
          // INST
          const module = this.line();
          const name = this.line();
          this.push(this.call(at, new PickleGlobal(module, name), this.popMark(at)));
          break;
        }
        case 0x6f: {
          // OBJ
          const items = this.popMark(at);
          const [cls, ...args] = items;
          this.push(this.call(at, cls, args));
          break;
        }
        case 0x62: {
          // BUILD
          const state = this.pop(at);
          this.build(this.top(at), state);
          break;
        }
        case 0x51: {
          // BINPERSID
          const pid = this.pop(at);
          this.push(this.persistentLoad(at, pid));
          break;
        }
        case 0x50: // PERSID
          this.push(this.persistentLoad(at, this.line()));
          break;
        case 0x82:
        case 0x83:
        case 0x84:
          this.fail(at, 'pickle extension registry codes (EXT1/2/4) are not supported');
          break;
        default:
          this.fail(
            at,
            `unknown pickle opcode 0x${op.toString(16).padStart(2, '0')} (corrupt or not a pickle)`,
          );
      }
    }
  }

  private fail(at: number, message: string): never {
    throw new CheckpointFormatError(this.options.source, `${message} (at pickle byte ${at})`);
  }

  private advance(n: number): number {
    const at = this.pos;
    if (at + n > this.data.length) {
      this.fail(at, `pickle data ends after ${this.data.length} bytes, ${n} more expected (truncated)`);
    }
    this.pos = at + n;
    return at;
  }

  private u8(): number {
    return this.data[this.advance(1)] ?? 0;
  }

  private u32(): number {
    return this.view.getUint32(this.advance(4), true);
  }

  private u64(at: number): number {
    const value = this.view.getBigUint64(this.advance(8), true);
    if (value > MAX_SAFE) this.fail(at, `length ${value} is impossible`);
    return Number(value);
  }

  private take(n: number): Uint8Array {
    const start = this.advance(n);
    return this.data.subarray(start, start + n);
  }

  private line(): string {
    const start = this.pos;
    const end = this.data.indexOf(0x0a, start);
    if (end < 0) this.fail(start, 'pickle data ends inside a text argument (truncated)');
    this.pos = end + 1;
    return latin1.decode(this.data.subarray(start, end));
  }

  private text(at: number, bytes: Uint8Array): string {
    try {
      return utf8.decode(bytes);
    } catch {
      return this.fail(at, 'string is not valid UTF-8');
    }
  }

  private decodeLong(bytes: Uint8Array): number | bigint {
    if (bytes.length === 0) return 0;
    let value = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0);
    if ((bytes[bytes.length - 1] ?? 0) & 0x80) value -= 1n << BigInt(bytes.length * 8);
    return normaliseInt(value);
  }

  private parseIntText(at: number, text: string): number | bigint {
    if (!/^[+-]?\d+$/.test(text)) this.fail(at, `bad integer literal ${JSON.stringify(text)}`);
    return normaliseInt(BigInt(text));
  }

  private parseMemoIndex(at: number, text: string): number {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < 0) this.fail(at, `bad memo index ${JSON.stringify(text)}`);
    return n;
  }

  private rawUnicodeEscape(text: string): string {
    return text.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, u4?: string, u8?: string) =>
      String.fromCodePoint(Number.parseInt(u4 ?? u8 ?? '0', 16)),
    );
  }

  private pythonStringLiteral(at: number, text: string): string {
    const quote = text[0];
    if ((quote !== "'" && quote !== '"') || text.length < 2 || text[text.length - 1] !== quote) {
      this.fail(at, 'STRING argument is not quoted');
    }
    return text.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_m, esc: string) => {
      if (esc[0] === 'x') return String.fromCharCode(Number.parseInt(esc.slice(1), 16));
      if (/^[0-7]/.test(esc)) return String.fromCharCode(Number.parseInt(esc, 8));
      const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"' };
      return simple[esc] ?? `\\${esc}`;
    });
  }

  private push(value: unknown): void {
    this.stack.push(value);
  }

  private pop(at: number): unknown {
    if (this.stack.length === 0) this.fail(at, 'pickle stack underflow (corrupt pickle)');
    return this.stack.pop();
  }

  private top(at: number): unknown {
    if (this.stack.length === 0) this.fail(at, 'pickle stack underflow (corrupt pickle)');
    return this.stack[this.stack.length - 1];
  }

  private popMark(at: number): unknown[] {
    const items = this.stack;
    const previous = this.metastack.pop();
    if (previous === undefined) this.fail(at, 'pickle MARK missing (corrupt pickle)');
    this.stack = previous;
    return items;
  }

  private memoGet(at: number, index: number): unknown {
    if (!this.memo.has(index)) this.fail(at, `pickle memo entry ${index} was never stored (corrupt pickle)`);
    return this.memo.get(index);
  }

  private asArgs(at: number, args: unknown): readonly unknown[] {
    if (!Array.isArray(args)) this.fail(at, 'call arguments are not a tuple');
    return args as readonly unknown[];
  }

  private append(at: number, target: unknown, values: readonly unknown[]): void {
    if (Array.isArray(target) && !Object.isFrozen(target)) target.push(...values);
    else if (target instanceof PickleObject) target.listItems.push(...values);
    else if (target instanceof Set) for (const v of values) target.add(v);
    else this.fail(at, 'APPEND on a value that is not a list');
  }

  private setItems(at: number, target: unknown, items: readonly unknown[]): void {
    let dict: Map<unknown, unknown>;
    if (target instanceof Map) dict = target;
    else if (target instanceof PickleObject) dict = target.dictItems;
    else return this.fail(at, 'SETITEM on a value that is not a dict');
    for (let i = 0; i + 1 < items.length; i += 2) dict.set(items[i], items[i + 1]);
  }

  private build(target: unknown, state: unknown): void {
    // Plain containers (an OrderedDict's `_metadata`, for instance) carry no data we use.
    if (target instanceof PickleObject) target.state = state;
  }

  private persistentLoad(at: number, pid: unknown): unknown {
    const hook = this.options.hooks?.persistentLoad;
    if (hook === undefined) this.fail(at, 'persistent id found but nothing resolves persistent ids');
    return hook(pid);
  }

  private call(at: number, callable: unknown, args: readonly unknown[]): unknown {
    if (!(callable instanceof PickleGlobal)) {
      // Calling the result of an unknown call: stays inert.
      if (callable instanceof PickleObject) return new PickleObject(callable.type, args);
      this.fail(at, 'REDUCE on a value that is not a class or function');
    }
    const hooked = this.options.hooks?.reduce?.(callable, args) ?? NOT_HANDLED;
    if (hooked !== NOT_HANDLED) return hooked;
    return defaultReduce(callable, args);
  }
}

function defaultReduce(callable: PickleGlobal, args: readonly unknown[]): unknown {
  const [first] = args;
  switch (callable.qualifiedName) {
    case 'collections.OrderedDict':
    case 'builtins.dict':
    case '__builtin__.dict': {
      const dict = new Map<unknown, unknown>();
      if (Array.isArray(first)) {
        for (const pair of first) if (Array.isArray(pair)) dict.set(pair[0], pair[1]);
      } else if (first instanceof Map) {
        for (const [k, v] of first) dict.set(k, v);
      }
      return dict;
    }
    case 'builtins.list':
    case '__builtin__.list':
      return Array.isArray(first) ? [...(first as unknown[])] : [];
    case 'builtins.tuple':
    case '__builtin__.tuple':
      return tuple(Array.isArray(first) ? [...(first as unknown[])] : []);
    case 'builtins.set':
    case '__builtin__.set':
    case 'builtins.frozenset':
    case '__builtin__.frozenset':
      return new Set(Array.isArray(first) ? (first as unknown[]) : []);
    case 'builtins.bytearray':
    case '__builtin__.bytearray':
      if (first instanceof Uint8Array) return first.slice();
      if (typeof first === 'string') return latin1Bytes(first);
      return new Uint8Array(0);
    case '_codecs.encode':
      // Protocol 2 spells Python 3 bytes as _codecs.encode(text, 'latin1').
      if (typeof first === 'string') return latin1Bytes(first);
      break;
    case 'copyreg._reconstructor':
    case 'copy_reg._reconstructor':
      if (first instanceof PickleGlobal) return new PickleObject(first, args.slice(1));
      break;
    default:
      break;
  }
  return new PickleObject(callable, args);
}

function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

/** Unpickles one value (the stream must end with STOP). */
export function unpickle(data: Uint8Array, options: UnpickleOptions): unknown {
  return new Unpickler(data, options).run();
}
