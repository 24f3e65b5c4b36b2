// Parity with Python: every expected value below comes from test-data/html-unescape.json, written
// by tools/golden/html-unescape.py with CPython's html.unescape and ftfy 6.3.1 (see its header).
// The token ids there come from that script's BPE, which it first checks against all official
// vectors in shared/golden/tiny-a/expected/tokenizer/clip.json.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanClipText } from './clean';
import { defaultClipTokenizer } from './clip-tokenizer';
import { ftfyUnescapeHtml, htmlUnescape } from './html-unescape';
import { HTML5_ENTITIES } from './html5-entities.generated';

interface Fixture {
  readonly python: string;
  readonly ftfy_version: string;
  readonly entities: number;
  /** [input, html.unescape(input), html.unescape twice, ftfy.fixes.unescape_html(input)] */
  readonly rows: [string, string, string, string][];
  /** [input, CLIP basic_clean + whitespace_clean + lower, ids of that text (SOT … EOT, unpadded)] */
  readonly clean: [string, string, number[]][];
}

const fixture = JSON.parse(
  readFileSync(join(__dirname, '..', '..', 'test-data', 'html-unescape.json'), 'utf8'),
) as Fixture;

/** Rows where `fn` disagrees with column `column`, shown with escapes so invisible characters read. */
function mismatches(fn: (s: string) => string, column: 1 | 2 | 3): string[] {
  const bad: string[] = [];
  for (const row of fixture.rows) {
    const got = fn(row[0]);
    if (got !== row[column]) {
      bad.push(
        `${JSON.stringify(row[0])}: got ${JSON.stringify(got)}, Python ${JSON.stringify(row[column])}`,
      );
    }
  }
  return bad;
}

describe('HTML5 entity table', () => {
  it('has every name of html.entities.html5', () => {
    expect(fixture.entities).toBe(2231);
    expect(Object.keys(HTML5_ENTITIES)).toHaveLength(fixture.entities);
    // Every table name appears in the fixture as `&name`, decoded by Python to the table's value.
    const decoded = new Map(fixture.rows.map((row) => [row[0], row[1]]));
    for (const [name, value] of Object.entries(HTML5_ENTITIES)) {
      expect(decoded.get(`&${name}`), name).toBe(value);
    }
  });
});

describe(`html.unescape parity (${fixture.rows.length} rows, Python ${fixture.python})`, () => {
  it('covers the table, the legacy prefixes, numeric edge cases and mixed text', () => {
    expect(fixture.rows.length).toBeGreaterThan(9000);
  });

  it('matches html.unescape on every row', () => {
    expect(mismatches(htmlUnescape, 1)).toEqual([]);
  });

  it('matches html.unescape applied twice on every row', () => {
    expect(mismatches((s) => htmlUnescape(htmlUnescape(s)), 2)).toEqual([]);
  });

  it('spot checks read as the rules say', () => {
    expect(htmlUnescape('&notit;')).toBe('\u00acit;');
    expect(htmlUnescape('&NotEqualTilde;')).toBe('\u2242\u0338');
    expect(htmlUnescape('&#0;&#x110000;&#xD800;&#x1;&#150;')).toBe('\ufffd\ufffd\ufffd\u2013');
    expect(htmlUnescape('&constructor;')).toBe('&constructor;');
  });
});

describe(`ftfy ${fixture.ftfy_version} entity step parity`, () => {
  it('matches ftfy.fixes.unescape_html on every row', () => {
    expect(mismatches(ftfyUnescapeHtml, 3)).toEqual([]);
  });
});

describe('CLIP cleaning and tokens for entity text (MODEL_SPEC §2.4)', () => {
  it.each(fixture.clean)('%j cleans as ftfy.fix_text + html.unescape twice do', (input, cleaned, _ids) => {
    expect(cleanClipText(input)).toBe(cleaned);
  });

  it('tokenizes each input to the ids Python gives its cleaned text', () => {
    const tok = defaultClipTokenizer();
    expect(fixture.clean.length).toBeGreaterThan(20);
    for (const [input, , ids] of fixture.clean) {
      const result = tok.tokenize(input);
      expect(Array.from(result.ids.subarray(0, result.length), Number), JSON.stringify(input)).toEqual(ids);
    }
    for (const input of ['&NotEqualTilde;', '&amp', '&#x110000;', '&#0;']) {
      expect(
        fixture.clean.some(([s]) => s === input),
        input,
      ).toBe(true);
    }
  });
});
