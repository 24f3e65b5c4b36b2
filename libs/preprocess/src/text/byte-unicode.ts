/**
 * CLIP's reversible byte ↔ character table (MODEL_SPEC §2.4): every byte becomes one printable
 * character so BPE can work on strings. Printable Latin-1 bytes map to themselves; the other 68
 * bytes map, in increasing order, to U+0100, U+0101, ….
 */
function isSelfMapped(byte: number): boolean {
  return (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff);
}

/**
 * The 256 byte characters in vocabulary order (ids 0–255): first the self-mapped bytes in
 * increasing order, then the remapped ones in increasing order.
 */
export const BYTE_CHARS_IN_VOCAB_ORDER: readonly string[] = (() => {
  const selfMapped: string[] = [];
  const remapped: string[] = [];
  let next = 0x100;
  for (let byte = 0; byte < 256; byte++) {
    if (isSelfMapped(byte)) selfMapped.push(String.fromCharCode(byte));
    else remapped.push(String.fromCharCode(next++));
  }
  return [...selfMapped, ...remapped];
})();

/** `BYTE_TO_CHAR[b]` is the character that stands for byte `b`. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const table: string[] = [];
  let next = 0x100;
  for (let byte = 0; byte < 256; byte++) {
    table.push(isSelfMapped(byte) ? String.fromCharCode(byte) : String.fromCharCode(next++));
  }
  return table;
})();

const encoder = new TextEncoder();

/** UTF-8 bytes of `text`, each replaced by its byte character. */
export function bytesToUnicode(text: string): string {
  let out = '';
  for (const byte of encoder.encode(text)) out += BYTE_TO_CHAR[byte] ?? '';
  return out;
}
