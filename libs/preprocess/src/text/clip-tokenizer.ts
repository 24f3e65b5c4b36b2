import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { BYTE_CHARS_IN_VOCAB_ORDER, bytesToUnicode } from './byte-unicode';
import { cleanClipText } from './clean';

/** ImageBind's text context (MODEL_SPEC §2.4). */
export const CLIP_CONTEXT_LENGTH = 77;
export const CLIP_SOT_TOKEN = '<|startoftext|>';
export const CLIP_EOT_TOKEN = '<|endoftext|>';
export const CLIP_SOT_ID = 49406;
export const CLIP_EOT_ID = 49407;
export const CLIP_VOCAB_SIZE = 49408;
/** Merges used: lines 1..48894 of the merges file (49152 − 256 − 2). */
const MERGE_COUNT = 49152 - 256 - 2;
/** Default cap on the input length; the context keeps 75 tokens, so real prompts are far shorter. */
export const DEFAULT_MAX_TEXT_CHARS = 16_384;

const VOCAB_FILE = 'bpe_simple_vocab_16e6.txt.gz';

/**
 * The vocabulary shipped with this package (`assets/bpe_simple_vocab_16e6.txt.gz`). The path is
 * resolved from the package root, which is two folders above this file in `src/` and `dist/`.
 */
export function clipVocabPath(): string {
  const packageRoot = resolve(__dirname, '..', '..');
  const path = join(packageRoot, 'assets', VOCAB_FILE);
  if (!existsSync(path)) {
    throw new Error(`CLIP BPE vocabulary not found at ${path} (it ships in the package's assets/ folder)`);
  }
  return path;
}

// The pre-tokenisation regex of CLIP's SimpleTokenizer. Text is lower-cased first, so the
// official case-insensitive flag only matters for the contraction alternatives.
const PRE_TOKEN =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/giu;

export interface ClipTokenizeOptions {
  /** Output length; default 77. */
  readonly contextLength?: number;
  /** Longer inputs are refused with PAYLOAD_TOO_LARGE; default {@link DEFAULT_MAX_TEXT_CHARS}. */
  readonly maxChars?: number;
}

export interface ClipTokens {
  /** `[contextLength]` int64 ids: SOT, BPE ids, EOT, zero padding. */
  readonly ids: BigInt64Array;
  /** Ids before padding (at most `contextLength`). */
  readonly length: number;
  /** The framed sequence was longer than the context and lost its tail, EOT included (B14). */
  readonly truncated: boolean;
}

/** CLIP's `SimpleTokenizer` as ImageBind's `load_and_transform_text` drives it. */
export class ClipTokenizer {
  private readonly encoder: Map<string, number>;
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, readonly string[]>();

  private constructor(merges: readonly (readonly [string, string])[]) {
    const vocab: string[] = [
      ...BYTE_CHARS_IN_VOCAB_ORDER,
      ...BYTE_CHARS_IN_VOCAB_ORDER.map((c) => `${c}</w>`),
    ];
    this.ranks = new Map();
    merges.forEach(([a, b], rank) => {
      vocab.push(a + b);
      this.ranks.set(pairKey(a, b), rank);
    });
    vocab.push(CLIP_SOT_TOKEN, CLIP_EOT_TOKEN);
    this.encoder = new Map(vocab.map((token, id) => [token, id]));
    this.cache.set(CLIP_SOT_TOKEN, [CLIP_SOT_TOKEN]);
    this.cache.set(CLIP_EOT_TOKEN, [CLIP_EOT_TOKEN]);
  }

  /** From the merges file's text (first line is the header). */
  static fromMergesText(text: string): ClipTokenizer {
    const lines = text.split('\n');
    if (lines.length < MERGE_COUNT + 1) {
      throw new Error(`CLIP merges file has ${lines.length} lines; expected at least ${MERGE_COUNT + 1}`);
    }
    const merges = lines.slice(1, MERGE_COUNT + 1).map((line, i): [string, string] => {
      const parts = line.split(/\s+/).filter((p) => p !== '');
      const [a, b] = parts;
      if (parts.length !== 2 || a === undefined || b === undefined) {
        throw new Error(`CLIP merges file line ${i + 2} is not a pair: ${JSON.stringify(line)}`);
      }
      return [a, b];
    });
    return new ClipTokenizer(merges);
  }

  /** From the gzip-compressed merges file. */
  static fromGzip(bytes: Uint8Array): ClipTokenizer {
    return ClipTokenizer.fromMergesText(gunzipSync(bytes).toString('utf8'));
  }

  /** Reads `path` (default: the packaged vocabulary). */
  static fromFile(path: string = clipVocabPath()): ClipTokenizer {
    return ClipTokenizer.fromGzip(readFileSync(path));
  }

  get vocabSize(): number {
    return this.encoder.size;
  }

  /** BPE symbols of cleaned text (the vocabulary strings, `</w>` marking word ends). */
  bpeTokens(text: string, options: ClipTokenizeOptions = {}): string[] {
    checkLength(text, options.maxChars ?? DEFAULT_MAX_TEXT_CHARS);
    return this.symbols(cleanClipText(text), Number.POSITIVE_INFINITY);
  }

  /** `SimpleTokenizer.encode`: ids of the cleaned text, without SOT/EOT. */
  encode(text: string, options: ClipTokenizeOptions = {}): number[] {
    checkLength(text, options.maxChars ?? DEFAULT_MAX_TEXT_CHARS);
    return this.toIds(this.symbols(cleanClipText(text), Number.POSITIVE_INFINITY));
  }

  /** `[SOT] + encode(text) + [EOT]`, truncated to the context (dropping EOT) and zero-padded. */
  tokenize(text: string, options: ClipTokenizeOptions = {}): ClipTokens {
    const contextLength = options.contextLength ?? CLIP_CONTEXT_LENGTH;
    if (!Number.isInteger(contextLength) || contextLength < 1) {
      throw DomainError.invalidInput(`contextLength must be a positive integer, got ${contextLength}`);
    }
    checkLength(text, options.maxChars ?? DEFAULT_MAX_TEXT_CHARS);
    // Pre-tokens are encoded independently, so stopping once the context is full is exact.
    const body = this.toIds(this.symbols(cleanClipText(text), contextLength));
    const framed = [CLIP_SOT_ID, ...body, CLIP_EOT_ID];
    const truncated = framed.length > contextLength;
    const kept = framed.slice(0, contextLength);
    const ids = new BigInt64Array(contextLength);
    kept.forEach((id, i) => (ids[i] = BigInt(id)));
    return { ids, length: kept.length, truncated };
  }

  /** `[B, contextLength]` int64, row-major, as `load_and_transform_text` returns. */
  tokenizeBatch(texts: readonly string[], options: ClipTokenizeOptions = {}): BigInt64Array {
    const contextLength = options.contextLength ?? CLIP_CONTEXT_LENGTH;
    const out = new BigInt64Array(texts.length * contextLength);
    texts.forEach((text, row) => out.set(this.tokenize(text, options).ids, row * contextLength));
    return out;
  }

  private toIds(symbols: readonly string[]): number[] {
    return symbols.map((symbol) => {
      const id = this.encoder.get(symbol);
      if (id === undefined)
        throw new Error(`BPE produced ${JSON.stringify(symbol)}, which is not in the vocabulary`);
      return id;
    });
  }

  /** BPE symbols of already-cleaned text; stops once more than `limit` symbols exist. */
  private symbols(cleaned: string, limit: number): string[] {
    const out: string[] = [];
    for (const match of cleaned.matchAll(PRE_TOKEN)) {
      out.push(...this.bpe(bytesToUnicode(match[0])));
      if (out.length > limit) break;
    }
    return out;
  }

  private bpe(token: string): readonly string[] {
    const cached = this.cache.get(token);
    if (cached !== undefined) return cached;
    const chars = Array.from(token);
    let word: string[] = chars.map((c, i) => (i === chars.length - 1 ? `${c}</w>` : c));
    while (word.length > 1) {
      let best: [string, string] | undefined;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let i = 0; i + 1 < word.length; i++) {
        const a = word[i] ?? '';
        const b = word[i + 1] ?? '';
        const rank = this.ranks.get(pairKey(a, b));
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = [a, b];
        }
      }
      if (best === undefined) break;
      const [first, second] = best;
      const merged: string[] = [];
      for (let i = 0; i < word.length;) {
        if (word[i] === first && i + 1 < word.length && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(word[i] ?? '');
          i += 1;
        }
      }
      word = merged;
    }
    if (this.cache.size < 100_000) this.cache.set(token, word);
    return word;
  }
}

function pairKey(a: string, b: string): string {
  return `${a}\u0000${b}`;
}

function checkLength(text: string, maxChars: number): void {
  if (text.length > maxChars) {
    throw new DomainError(
      ErrorCode.PayloadTooLarge,
      `text is ${text.length} characters; the limit is ${maxChars} (the text encoder keeps only 75 tokens)`,
      { limit: maxChars },
    );
  }
}

let defaultTokenizer: ClipTokenizer | undefined;

/** The packaged tokenizer, loaded once. */
export function defaultClipTokenizer(): ClipTokenizer {
  defaultTokenizer ??= ClipTokenizer.fromFile();
  return defaultTokenizer;
}

/** ImageBind's `load_and_transform_text` for one text: `[77]` int64 ids. */
export function tokenizeClipText(text: string, options: ClipTokenizeOptions = {}): BigInt64Array {
  return defaultClipTokenizer().tokenize(text, options).ids;
}
