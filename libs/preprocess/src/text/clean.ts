import { CP1252_HIGH, ftfyUnescapeHtml, htmlUnescape } from './html-unescape';

/**
 * Text cleaning before CLIP BPE (MODEL_SPEC §2.4): `ftfy.fix_text` (default settings), then
 * `html.unescape` twice, strip, collapse whitespace, strip, lower-case.
 *
 * ftfy is approximated by the fixes that change real captions and prompts, in ftfy's order:
 * HTML entities (when the text has no `<`), terminal escapes, UTF-8 mojibake read as
 * Latin-1/Windows-1252 ("cafÃ©" → "café", "â€™" → "’"), stray C1 controls, Latin ligatures,
 * full-width forms, curly quotes, line breaks, lone surrogates, control characters, NFC.
 * ftfy's statistical "is this text bad?" test is replaced by a narrower rule: only byte sequences
 * that form valid multi-byte UTF-8 are repaired, never whole-text re-decodes.
 */

/** Byte value of a character under "sloppy" Windows-1252 (Latin-1 plus the 1252 punctuation). */
const CHAR_TO_BYTE: ReadonlyMap<number, number> = (() => {
  const map = new Map<number, number>();
  for (let b = 0; b < 256; b++) map.set(b, b);
  CP1252_HIGH.forEach((ch, i) => map.set(ch.codePointAt(0) ?? 0, 0x80 + i));
  return map;
})();

function byteOf(ch: string | undefined): number {
  if (ch === undefined) return -1;
  return CHAR_TO_BYTE.get(ch.codePointAt(0) ?? -1) ?? -1;
}

function isContinuation(b: number): boolean {
  return b >= 0x80 && b <= 0xbf;
}

/**
 * Decodes the UTF-8 sequence whose bytes are spelled by `chars[i..]`, or returns undefined when
 * they do not form one. Returns the decoded character and how many input characters it used.
 */
function decodeMojibakeAt(chars: readonly string[], i: number): [string, number] | undefined {
  const lead = byteOf(chars[i]);
  let length: number;
  let low = 0x80;
  let high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) length = 2;
  else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead === 0xe0) low = 0xa0;
    if (lead === 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead === 0xf0) low = 0x90;
    if (lead === 0xf4) high = 0x8f;
  } else return undefined;
  const bytes = [lead];
  for (let k = 1; k < length; k++) {
    const b = byteOf(chars[i + k]);
    if (!isContinuation(b) || (k === 1 && (b < low || b > high))) return undefined;
    bytes.push(b);
  }
  const second = bytes[1] ?? 0;
  if (length === 2) {
    // "Â" + Windows-1252 punctuation would decode to a C1 control: never what the author meant.
    if (lead === 0xc2 && second < 0xa0) return undefined;
    // Ü/Ý/Þ/ß followed by a quote or dash is ordinary text far more often than Syriac/N'Ko mojibake.
    if (lead >= 0xdc && second < 0xa0) return undefined;
  }
  const decoded = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  return [decoded, length];
}

function fixMojibake(text: string): string {
  if (!/[\u00c2-\u00f4]/.test(text)) return text;
  const chars = Array.from(text);
  let out = '';
  for (let i = 0; i < chars.length;) {
    const fixed = decodeMojibakeAt(chars, i);
    if (fixed === undefined) {
      out += chars[i] ?? '';
      i += 1;
    } else {
      out += fixed[0];
      i += fixed[1];
    }
  }
  return out;
}

function fixC1Controls(text: string): string {
  return text.replace(/[\u0080-\u009f]/g, (c) => CP1252_HIGH[c.charCodeAt(0) - 0x80] ?? c);
}

const LIGATURES = /[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g;

function fixLatinLigatures(text: string): string {
  return text.replace(LIGATURES, (c) => c.normalize('NFKC'));
}

function fixCharacterWidth(text: string): string {
  return text.replace(/[\u3000\uff01-\uffef]/g, (c) => (c === '\u3000' ? ' ' : c.normalize('NFKC')));
}

function uncurlQuotes(text: string): string {
  return text.replace(/[\u02bc\u2018-\u201b]/g, "'").replace(/[\u201c-\u201f]/g, '"');
}

function fixLineBreaks(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(/[\r\u2028\u2029\u0085]/g, '\n');
}

function fixSurrogates(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

// eslint-disable-next-line no-control-regex -- removing control characters is the point
const CONTROL_CHARS = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;
// eslint-disable-next-line no-control-regex -- ANSI terminal escapes start with ESC
const TERMINAL_ESCAPES = /\x1b\[[\d;]*[a-zA-Z]/g;

function fixOnce(text: string, unescapeHtml: boolean): string {
  let t = unescapeHtml ? ftfyUnescapeHtml(text) : text;
  t = t.replace(TERMINAL_ESCAPES, '');
  t = fixMojibake(t);
  t = fixC1Controls(t);
  t = fixLatinLigatures(t);
  t = fixCharacterWidth(t);
  t = uncurlQuotes(t);
  t = fixLineBreaks(t);
  t = fixSurrogates(t);
  t = t.replace(CONTROL_CHARS, '');
  return t.normalize('NFC');
}

function fixSegment(segment: string, unescapeHtml: boolean): string {
  let current = segment;
  for (let round = 0; round < 4; round++) {
    const next = fixOnce(current, unescapeHtml);
    if (next === current) break;
    current = next;
  }
  return current;
}

/**
 * The ftfy subset described in the module comment, repeated until the text stops changing.
 * Like `ftfy.fix_text` (6.3.1) it works line by line, and its HTML step stops for good at the
 * first line that contains `<`: earlier lines are still unescaped, that line and later ones not.
 */
export function fixText(text: string): string {
  let unescapeHtml = true;
  let out = '';
  for (const segment of text.split(/(?<=\n)/)) {
    if (segment.includes('<')) unescapeHtml = false;
    out += fixSegment(segment, unescapeHtml);
  }
  return out;
}

// Python's `str.isspace()` set, which `re`'s `\s` and `str.strip()` use (JS `\s` differs).
const PY_SPACE =
  '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'g');
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');

function pyStrip(text: string): string {
  return text.replace(PY_STRIP, '');
}

/** CLIP's `basic_clean` + `whitespace_clean` + `.lower()`. */
export function cleanClipText(text: string): string {
  const basic = pyStrip(htmlUnescape(htmlUnescape(fixText(text))));
  return pyStrip(basic.replace(PY_SPACE_RUN, ' ')).toLowerCase();
}
