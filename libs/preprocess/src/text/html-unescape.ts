/**
 * `html.unescape` exactly as Python's standard library does it (CPython `Lib/html/__init__.py`),
 * and ftfy's own entity step, both over the full HTML5 table (`html.entities.html5`, 2231 names).
 *
 * Numeric references follow the HTML5 rules Python implements: 0 and the C1 range go through a
 * remap table (Windows-1252), surrogates and values past U+10FFFF become U+FFFD, non-characters
 * and most controls vanish. A named reference is looked up as written (with its `;` if it has one);
 * failing that, the longest name of at least two characters that prefixes it and may omit the
 * semicolon is decoded and the rest kept (`&notit;` → `¬it;`); failing that, it stays as written.
 */
import { HTML5_ENTITIES } from './html5-entities.generated';

/** Windows-1252 characters for bytes 0x80–0x9F; the five undefined bytes stay C1 controls. */
export const CP1252_HIGH: readonly string[] = [
  '\u20ac',
  '\x81',
  '\u201a',
  '\u0192',
  '\u201e',
  '\u2026',
  '\u2020',
  '\u2021',
  '\u02c6',
  '\u2030',
  '\u0160',
  '\u2039',
  '\u0152',
  '\x8d',
  '\u017d',
  '\x8f',
  '\x90',
  '\u2018',
  '\u2019',
  '\u201c',
  '\u201d',
  '\u2022',
  '\u2013',
  '\u2014',
  '\u02dc',
  '\u2122',
  '\u0161',
  '\u203a',
  '\u0153',
  '\x9d',
  '\u017e',
  '\u0178',
];

// A Map, not the object itself: names like `constructor` must not find Object.prototype members.
const ENTITIES: ReadonlyMap<string, string> = new Map(Object.entries(HTML5_ENTITIES));

/** Python's `_invalid_codepoints`: references to these decode to nothing. */
function isDroppedCodePoint(cp: number): boolean {
  return (
    (cp >= 0x1 && cp <= 0x8) ||
    cp === 0xb ||
    (cp >= 0xe && cp <= 0x1f) ||
    (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0xfdd0 && cp <= 0xfdef) ||
    (cp & 0xfffe) === 0xfffe
  );
}

/** The character a numeric reference stands for, by the HTML5 rules Python implements. */
export function numericCharRef(cp: number): string {
  // Python's `_invalid_charrefs`: 0, CR and the C1 range.
  if (cp === 0) return '\ufffd';
  if (cp === 0x0d) return '\r';
  if (cp >= 0x80 && cp <= 0x9f) return CP1252_HIGH[cp - 0x80] ?? '';
  if ((cp >= 0xd800 && cp <= 0xdfff) || !(cp <= 0x10ffff)) return '\ufffd';
  if (isDroppedCodePoint(cp)) return '';
  return String.fromCodePoint(cp);
}

// Python's `_charref` pattern. The `u` flag makes `{1,32}` count code points, as Python's str does.
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

function replaceCharRef(ref: string): string {
  if (ref.startsWith('#')) {
    const hex = ref[1] === 'x' || ref[1] === 'X';
    const digits = ref.slice(hex ? 2 : 1).replace(/;$/, '');
    // Digits only (the pattern says so); a value too large for a double is Infinity, still > U+10FFFF.
    return numericCharRef(Number.parseInt(digits, hex ? 16 : 10));
  }
  const exact = ENTITIES.get(ref);
  if (exact !== undefined) return exact;
  // Prefixes never contain the `;`, so only the legacy semicolon-less names can match here.
  const chars = Array.from(ref);
  for (let length = chars.length - 1; length > 1; length--) {
    const value = ENTITIES.get(chars.slice(0, length).join(''));
    if (value !== undefined) return value + chars.slice(length).join('');
  }
  return `&${ref}`;
}

/** Python's `html.unescape`. */
export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF, (_match, ref: string) => replaceCharRef(ref));
}

/**
 * ftfy 6.3.1 also decodes all-caps spellings of the lower-case names (`&NTILDE;` → `Ñ`), to their
 * upper-cased text, when the all-caps spelling means nothing to `html.unescape`.
 */
const FTFY_UPPER: ReadonlyMap<string, string> = (() => {
  const map = new Map<string, string>();
  for (const [name, value] of ENTITIES) {
    if (!name.endsWith(';') || name !== name.toLowerCase()) continue;
    const upper = `&${name.toUpperCase()}`;
    if (htmlUnescape(upper) === upper) map.set(upper, value.toUpperCase());
  }
  return map;
})();

const STRICT_ENTITY = /&#?[0-9A-Za-z]{1,24};/g;

/**
 * ftfy's own HTML step (`ftfy.fixes.unescape_html`): only semicolon-terminated references, each
 * replaced once, and a numeric one only when `html.unescape` consumes it whole. Whether the step
 * runs at all (not once a line has contained `<`) is `fixText`'s decision, as in `ftfy.fix_text`.
 */
export function ftfyUnescapeHtml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(STRICT_ENTITY, (entity) => {
    const named = ENTITIES.get(entity.slice(1)) ?? FTFY_UPPER.get(entity);
    if (named !== undefined) return named;
    if (!entity.startsWith('&#')) return entity;
    const decoded = htmlUnescape(entity);
    return decoded.includes(';') ? entity : decoded;
  });
}
