import type { NormalizerSpec } from './sentencepiece-model.parser';

/** U+2581 LOWER ONE EIGHTH BLOCK: SentencePiece's visible stand-in for a space. */
export const SPACE_SYMBOL = '\u2581';

/**
 * SentencePiece's normaliser for a model without compiled rules (LLaMA's "identity", MODEL_SPEC
 * §5.9): characters pass through unchanged (no NFKC), ASCII spaces become ▁, and a dummy ▁ is
 * prepended so a word at the start is tokenized like one after a space. Only U+0020 is a space
 * here, exactly as in normalizer.cc: tabs, newlines and U+00A0 stay as they are.
 */
export function normalizeIdentity(text: string, spec: NormalizerSpec): string {
  let input = toWellFormed(text);
  if (spec.removeExtraWhitespaces) {
    // Off for LLaMA; kept so other identity-normalised BPE models behave like SentencePiece.
    input = input.replace(/ +/g, ' ').replace(/^ | $/g, '');
  }
  // An empty input stays empty: SentencePiece adds no dummy prefix to nothing.
  if (input.length === 0) {
    return '';
  }
  const body = spec.escapeWhitespaces ? input.replaceAll(' ', SPACE_SYMBOL) : input;
  const prefix = spec.addDummyPrefix ? (spec.escapeWhitespaces ? SPACE_SYMBOL : ' ') : '';
  return prefix + body;
}

/**
 * Lone UTF-16 surrogates cannot be encoded as UTF-8; SentencePiece replaces malformed input with
 * U+FFFD, so do the same here instead of letting them reach the byte fallback.
 */
function toWellFormed(text: string): string {
  return /[\uD800-\uDFFF]/.test(text)
    ? text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
    : text;
}
