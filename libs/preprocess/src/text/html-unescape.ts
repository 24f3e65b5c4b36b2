/**
 * `html.unescape` as Python's standard library does it, with a reduced named-entity table.
 *
 * Numeric references follow the HTML5 rules (C1 code points read as Windows-1252, surrogates and
 * out-of-range values become U+FFFD, non-characters and most controls vanish). Named references
 * cover the legacy set that may omit the semicolon (Latin-1 letters and signs, `amp`, `lt`, `gt`,
 * `quot`) plus common typographic names; an unknown name is left as written.
 */

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

// Names for U+00A0..U+00FF in code-point order (HTML 4 / HTML5 legacy entities).
const LATIN1_NAMES =
  'nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg macr deg plusmn sup2 ' +
  'sup3 acute micro para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest Agrave Aacute Acirc ' +
  'Atilde Auml Aring AElig Ccedil Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml ETH Ntilde Ograve ' +
  'Oacute Ocirc Otilde Ouml times Oslash Ugrave Uacute Ucirc Uuml Yacute THORN szlig agrave aacute ' +
  'acirc atilde auml aring aelig ccedil egrave eacute ecirc euml igrave iacute icirc iuml eth ntilde ' +
  'ograve oacute ocirc otilde ouml divide oslash ugrave uacute ucirc uuml yacute thorn yuml';

/** Names that HTML5 also accepts without the trailing semicolon. */
const LEGACY: ReadonlyMap<string, string> = (() => {
  const map = new Map<string, string>();
  LATIN1_NAMES.split(' ').forEach((name, i) => map.set(name, String.fromCharCode(0xa0 + i)));
  for (const [name, value] of [
    ['amp', '&'],
    ['AMP', '&'],
    ['lt', '<'],
    ['LT', '<'],
    ['gt', '>'],
    ['GT', '>'],
    ['quot', '"'],
    ['QUOT', '"'],
    ['COPY', '\u00a9'],
    ['REG', '\u00ae'],
  ] as const) {
    map.set(name, value);
  }
  return map;
})();

/** Names that need the semicolon (a common subset of the HTML5 table). */
const SEMICOLON_ONLY: ReadonlyMap<string, string> = new Map<string, string>([
  ['apos', "'"],
  ['OElig', '\u0152'],
  ['oelig', '\u0153'],
  ['Scaron', '\u0160'],
  ['scaron', '\u0161'],
  ['Yuml', '\u0178'],
  ['fnof', '\u0192'],
  ['circ', '\u02c6'],
  ['tilde', '\u02dc'],
  ['ensp', '\u2002'],
  ['emsp', '\u2003'],
  ['thinsp', '\u2009'],
  ['zwnj', '\u200c'],
  ['zwj', '\u200d'],
  ['lrm', '\u200e'],
  ['rlm', '\u200f'],
  ['ndash', '\u2013'],
  ['mdash', '\u2014'],
  ['lsquo', '\u2018'],
  ['rsquo', '\u2019'],
  ['sbquo', '\u201a'],
  ['ldquo', '\u201c'],
  ['rdquo', '\u201d'],
  ['bdquo', '\u201e'],
  ['dagger', '\u2020'],
  ['Dagger', '\u2021'],
  ['bull', '\u2022'],
  ['hellip', '\u2026'],
  ['permil', '\u2030'],
  ['prime', '\u2032'],
  ['Prime', '\u2033'],
  ['lsaquo', '\u2039'],
  ['rsaquo', '\u203a'],
  ['oline', '\u203e'],
  ['frasl', '\u2044'],
  ['euro', '\u20ac'],
  ['trade', '\u2122'],
  ['larr', '\u2190'],
  ['uarr', '\u2191'],
  ['rarr', '\u2192'],
  ['darr', '\u2193'],
  ['harr', '\u2194'],
  ['minus', '\u2212'],
  ['infin', '\u221e'],
  ['ne', '\u2260'],
  ['le', '\u2264'],
  ['ge', '\u2265'],
  ['hearts', '\u2665'],
  ['alpha', '\u03b1'],
  ['beta', '\u03b2'],
  ['gamma', '\u03b3'],
  ['delta', '\u03b4'],
  ['pi', '\u03c0'],
  ['sigma', '\u03c3'],
  ['mu', '\u03bc'],
  ['lambda', '\u03bb'],
  ['omega', '\u03c9'],
  ['Omega', '\u03a9'],
]);

function lookupWithSemicolon(name: string): string | undefined {
  return SEMICOLON_ONLY.get(name) ?? LEGACY.get(name);
}

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
  if (cp === 0) return '\ufffd';
  if (cp === 0x0d) return '\r';
  if (cp >= 0x80 && cp <= 0x9f) return CP1252_HIGH[cp - 0x80] ?? '';
  if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || !Number.isFinite(cp)) return '\ufffd';
  if (isDroppedCodePoint(cp)) return '';
  return String.fromCodePoint(cp);
}

const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

function replaceCharRef(ref: string): string {
  if (ref.startsWith('#')) {
    const hex = ref[1] === 'x' || ref[1] === 'X';
    const digits = ref.slice(hex ? 2 : 1).replace(/;$/, '');
    return numericCharRef(Number.parseInt(digits, hex ? 16 : 10));
  }
  if (ref.endsWith(';')) {
    const exact = lookupWithSemicolon(ref.slice(0, -1));
    if (exact !== undefined) return exact;
  } else {
    const exact = LEGACY.get(ref);
    if (exact !== undefined) return exact;
  }
  // The longest legacy name that prefixes the reference ("&copy2023" is "©2023").
  for (let length = ref.length - 1; length > 1; length--) {
    const value = LEGACY.get(ref.slice(0, length));
    if (value !== undefined) return value + ref.slice(length);
  }
  return `&${ref}`;
}

/** Python's `html.unescape` (see the module comment for the entity coverage). */
export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF, (_match, ref: string) => replaceCharRef(ref));
}

const STRICT_ENTITY = /&#?[0-9A-Za-z]{1,24};/g;

/**
 * ftfy's own HTML step: only semicolon-terminated references, each replaced once. ftfy skips it
 * when the text contains `<` (it then looks like real HTML).
 */
export function ftfyUnescapeHtml(text: string): string {
  if (text.includes('<') || !text.includes('&')) return text;
  return text.replace(STRICT_ENTITY, (entity) => {
    const body = entity.slice(1, -1);
    if (body.startsWith('#')) return replaceCharRef(`${body};`);
    return lookupWithSemicolon(body) ?? entity;
  });
}
