// helm-docs conventions in values.yaml: every value (a key whose value is a scalar, a list or an
// empty map) carries a `# --` description, or sits under an ancestor that has one (helm-docs then
// documents the ancestor as a whole, e.g. `pools`). A key holding a map of documented keys needs none.

export interface UndocumentedKey {
  readonly line: number;
  readonly path: string;
}

const KEY = /^(\s*)([A-Za-z0-9_.\-/]+|"[^"]+"):(.*)$/;

/** Whether the key on line `i` opens a map: nothing after the colon, next content line a deeper key. */
function opensMap(lines: readonly string[], i: number, indent: number, rest: string): boolean {
  if (rest.replace(/#.*$/, '').trim() !== '') return false;
  for (let j = i + 1; j < lines.length; j++) {
    const t = lines[j]!.trim();
    if (t === '' || t.startsWith('#')) continue;
    const next = KEY.exec(lines[j]!);
    return next !== null && next[1]!.length > indent;
  }
  return false;
}

/** Values of a values file (block-style YAML) that neither they nor an ancestor document with `# --`. */
export function undocumentedKeys(text: string): UndocumentedKey[] {
  const lines = text.split('\n');
  const missing: UndocumentedKey[] = [];
  // Open ancestors: indent, key, documented.
  const stack: { indent: number; key: string; documented: boolean }[] = [];
  let comment: string[] = [];
  lines.forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith('#')) {
      comment.push(trimmed);
      return;
    }
    if (trimmed === '') {
      comment = [];
      return;
    }
    const key = KEY.exec(raw);
    const own = comment.some((c) => c.startsWith('# --'));
    comment = [];
    if (key === null) return; // a list item or a continuation: part of its key's value
    const indent = key[1]!.length;
    while (stack.length > 0 && stack[stack.length - 1]!.indent >= indent) stack.pop();
    const inherited = stack.some((s) => s.documented);
    const path = [...stack.map((s) => s.key), key[2]!].join('.');
    if (!own && !inherited && !opensMap(lines, i, indent, key[3]!)) missing.push({ line: i + 1, path });
    stack.push({ indent, key: key[2]!, documented: own || inherited });
  });
  return missing;
}
