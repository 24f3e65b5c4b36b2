/**
 * UTF-8 decoding of byte-fallback runs the way SentencePiece does it (string_util::DecodeUTF8 and
 * IsValidDecodeUTF8): a well-formed character is kept, and otherwise exactly ONE byte becomes
 * U+FFFD and decoding resumes at the next byte. That differs from TextDecoder (which replaces a
 * whole ill-formed subsequence with one U+FFFD), so TextDecoder would disagree with the reference
 * on generated garbage such as a truncated 3-byte character.
 */

export const REPLACEMENT_CHARACTER = '\uFFFD';

/** What the bytes at an offset hold. */
export type Utf8Step =
  /** One well-formed character of `length` bytes. */
  | { readonly kind: 'char'; readonly length: number; readonly codePoint: number }
  /** The byte at the offset cannot start a character: it decodes to U+FFFD on its own. */
  | { readonly kind: 'invalid' }
  /** A possible character that needs more bytes than are available yet (streaming only). */
  | { readonly kind: 'incomplete' };

const INVALID: Utf8Step = { kind: 'invalid' };
const INCOMPLETE: Utf8Step = { kind: 'incomplete' };

const isTrail = (byte: number): boolean => (byte & 0xc0) === 0x80;

/** Surrogates are not characters; SentencePiece rejects them (and anything above U+10FFFF). */
const isValidCodePoint = (cp: number): boolean => cp < 0xd800 || (cp >= 0xe000 && cp <= 0x10ffff);

/** Sequence length announced by a lead byte, or 0 when the byte cannot start a sequence. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if ((lead & 0xe0) === 0xc0) return 2;
  if ((lead & 0xf0) === 0xe0) return 3;
  if ((lead & 0xf8) === 0xf0) return 4;
  return 0;
}

/** Smallest code point each length may encode (shorter forms are overlong, hence invalid). */
const MIN_CODE_POINT = [0, 0, 0x80, 0x800, 0x10000] as const;
const LEAD_MASK = [0, 0x7f, 0x1f, 0x0f, 0x07] as const;

/**
 * Classifies the bytes `bytes[offset..end)`. With `final` the run is complete, so a sequence cut
 * short is invalid (as in SentencePiece's batch decode). Without it, a cut-short sequence that some
 * continuation could still make well-formed is `incomplete`; one that no continuation can rescue
 * is already `invalid`, so a stream never holds back text that the batch decode would have emitted.
 */
export function classifyUtf8(
  bytes: ArrayLike<number>,
  offset: number,
  end: number,
  final: boolean,
): Utf8Step {
  const lead = bytes[offset] ?? 0;
  const length = sequenceLength(lead);
  if (length === 1) {
    return { kind: 'char', length: 1, codePoint: lead };
  }
  if (length === 0) {
    return INVALID;
  }
  const available = Math.min(end - offset, length);
  // Smallest and largest code point any completion of the available prefix could encode.
  let low = lead & (LEAD_MASK[length] ?? 0);
  let high = low;
  for (let i = 1; i < length; i++) {
    if (i < available) {
      const byte = bytes[offset + i] ?? 0;
      if (!isTrail(byte)) {
        return INVALID;
      }
      low = (low << 6) | (byte & 0x3f);
      high = (high << 6) | (byte & 0x3f);
    } else {
      low = low << 6;
      high = (high << 6) | 0x3f;
    }
  }
  const min = MIN_CODE_POINT[length] ?? 0;
  if (available === length) {
    return low >= min && isValidCodePoint(low) ? { kind: 'char', length, codePoint: low } : INVALID;
  }
  if (final) {
    return INVALID;
  }
  // [low, high] is contiguous; it can still be valid unless it lies entirely outside the valid set.
  const possible = high >= min && low <= 0x10ffff && !(low >= 0xd800 && high <= 0xdfff);
  return possible ? INCOMPLETE : INVALID;
}

/**
 * Decodes `bytes` from the front (see the file comment for the U+FFFD rule) and says how many it
 * consumed. With `final` that is all of them; without it, decoding stops before a sequence that
 * later bytes could still complete (see {@link classifyUtf8}).
 */
export function decodeUtf8Prefix(
  bytes: ArrayLike<number>,
  final: boolean,
): { readonly text: string; readonly consumed: number } {
  let text = '';
  let offset = 0;
  while (offset < bytes.length) {
    const step = classifyUtf8(bytes, offset, bytes.length, final);
    if (step.kind === 'incomplete') {
      break;
    }
    if (step.kind === 'char') {
      text += String.fromCodePoint(step.codePoint);
      offset += step.length;
    } else {
      text += REPLACEMENT_CHARACTER;
      offset += 1;
    }
  }
  return { text, consumed: offset };
}

/** Decodes a complete byte-fallback run; see the file comment for the U+FFFD rule. */
export function decodeByteRun(bytes: ArrayLike<number>): string {
  return decodeUtf8Prefix(bytes, true).text;
}
