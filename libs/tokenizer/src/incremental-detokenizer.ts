import type { LlamaTokenizer } from './llama-tokenizer';
import { decodeUtf8Prefix } from './utf8-bytes';

/** The parts of the tokenizer a detokenizer reads. */
export type DetokenizerVocabulary = Pick<LlamaTokenizer, 'byteValue' | 'pieceSurface' | 'vocabSize'>;

/**
 * Turns generated ids into text as they arrive, for token streaming. `push(id)` returns the text
 * that id adds: empty while a multi-byte character spelled with byte-fallback pieces is still
 * incomplete, and the whole character once its last byte arrives. After the last id, `finish()`
 * returns what is still held (an unfinished byte sequence, which decodes to U+FFFD per byte).
 *
 * Invariant: the pushed deltas followed by `finish()` concatenate to exactly `decode(ids)`; this
 * is the same state machine as `LlamaTokenizer.decode`, fed one id at a time. Held bytes are only
 * those that some later byte could still complete; bytes no continuation can rescue are emitted
 * as U+FFFD at once, so a stream never lags the batch decode by more than one character.
 */
export class IncrementalDetokenizer {
  private readonly pending: number[] = [];
  private atStart = true;
  private bosSpaceSeen = false;
  private producedText = false;

  constructor(private readonly vocabulary: DetokenizerVocabulary) {}

  /** Adds one id; returns the text it completes ('' when nothing is complete yet). */
  push(id: number): string {
    // Reject a bad id before touching any state, so the stream stays usable after the error.
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabulary.vocabSize) {
      throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabulary.vocabSize})`);
    }
    const byte = this.vocabulary.byteValue(id);
    if (byte !== undefined) {
      this.pending.push(byte);
      return this.drain(false);
    }
    const flushed = this.drain(true);
    if (this.bosSpaceSeen || this.producedText) {
      this.atStart = false;
    }
    const surface = this.vocabulary.pieceSurface(id, this.atStart);
    this.bosSpaceSeen = surface.consumedBosSpace;
    return this.emit(flushed + surface.text);
  }

  /** Adds several ids; returns the text they complete together. */
  pushAll(ids: Iterable<number>): string {
    let text = '';
    for (const id of ids) {
      text += this.push(id);
    }
    return text;
  }

  /** Ends the stream: returns held bytes decoded (each byte of a cut-off character → U+FFFD). */
  finish(): string {
    return this.emit(this.drain(true));
  }

  /** Decodes the complete characters at the front of the pending bytes (all of them if final). */
  private drain(final: boolean): string {
    const { text, consumed } = decodeUtf8Prefix(this.pending, final);
    this.pending.splice(0, consumed);
    return this.emit(text);
  }

  private emit(text: string): string {
    if (text.length > 0) {
      this.producedText = true;
    }
    return text;
  }
}
