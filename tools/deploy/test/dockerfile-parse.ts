// A Dockerfile reader for the static checks (no Docker engine on the build machines): instructions
// with their continuation lines joined and comment lines dropped (as BuildKit does, also inside a
// continued instruction), grouped into stages, plus the few argument forms the checks read.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './compose-model';

export interface Instruction {
  /** Upper-cased keyword: FROM, RUN, ENV, ... */
  readonly keyword: string;
  readonly args: string;
  /** 1-based line of the keyword, for messages. */
  readonly line: number;
}

export interface Stage {
  /** The image (or earlier stage) named by FROM, build arguments not yet substituted. */
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

export interface Dockerfile {
  readonly path: string;
  /** ARGs before the first FROM (usable in FROM lines). */
  readonly globalArgs: Instruction[];
  readonly stages: Stage[];
}

export function parseDockerfile(text: string, path: string): Dockerfile {
  const instructions: Instruction[] = [];
  let pending: { parts: string[]; line: number } | undefined;
  text.split('\n').forEach((rawLine, index) => {
    const line = rawLine.replace(/\r$/, '');
    const trimmed = line.trim();
    if (trimmed.startsWith('#')) return;
    if (pending === undefined && trimmed === '') return;
    const continues = /\\\s*$/.test(line);
    const content = continues ? line.replace(/\\\s*$/, '') : line;
    if (pending === undefined) pending = { parts: [], line: index + 1 };
    pending.parts.push(content.trim());
    if (!continues) {
      const joined = pending.parts.filter((p) => p !== '').join(' ');
      const match = /^(\S+)\s*(.*)$/s.exec(joined);
      if (match !== null) {
        instructions.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: pending.line });
      }
      pending = undefined;
    }
  });
  if (pending !== undefined) throw new Error(`${path}: the last instruction ends with a line continuation`);

  const globalArgs: Instruction[] = [];
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const words = instruction.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const asIndex = words.findIndex((w) => w.toUpperCase() === 'AS');
      stages.push({
        from: words[0] ?? '',
        name: asIndex >= 0 ? words[asIndex + 1] : undefined,
        instructions: [],
      });
    } else if (stages.length === 0) {
      if (instruction.keyword !== 'ARG') {
        throw new Error(`${path}:${instruction.line}: ${instruction.keyword} before the first FROM`);
      }
      globalArgs.push(instruction);
    } else {
      stages[stages.length - 1]!.instructions.push(instruction);
    }
  }
  return { path, globalArgs, stages };
}

export function readDockerfile(relativePath: string): Dockerfile {
  return parseDockerfile(readFileSync(join(repoRoot, relativePath), 'utf8'), relativePath);
}

/** Splits shell-like words: whitespace separates, quotes group and are removed. */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let current = '';
  let quote: string | undefined;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < text.length) current += text[++i];
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (quote !== undefined) throw new Error(`unterminated quote in: ${text}`);
  if (inWord) words.push(current);
  return words;
}

/** `KEY=value KEY2="a b"` (ENV, LABEL, ARG) as a map; the legacy `ENV KEY value` form too. */
export function keyValues(args: string): Record<string, string> {
  const words = shellWords(args);
  if (words.length > 0 && !words[0]!.includes('=')) {
    return words.length === 1 ? { [words[0]!]: '' } : { [words[0]!]: words.slice(1).join(' ') };
  }
  const out: Record<string, string> = {};
  for (const word of words) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new Error(`not KEY=value: ${word}`);
    out[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return out;
}

/**
 * The image a build produces: its last stage (or the stage `target` names) with the FROM chain
 * through earlier stages followed, so that a stage built `FROM <stage>` carries that stage's
 * instructions first (ENV, LABEL, HEALTHCHECK, CMD, ... are inherited). A FROM is resolved with
 * the global ARG defaults overridden by `buildArgs`, as Docker does; `from` of the result is the
 * image at the bottom of the chain.
 */
export function imageStage(
  file: Dockerfile,
  buildArgs: Readonly<Record<string, string>> = {},
  target?: string,
): Stage {
  const globals: Record<string, string | undefined> = {};
  for (const arg of file.globalArgs) {
    const word = shellWords(arg.args)[0] ?? '';
    const eq = word.indexOf('=');
    const name = eq < 0 ? word : word.slice(0, eq);
    globals[name] = buildArgs[name] ?? (eq < 0 ? undefined : word.slice(eq + 1));
  }
  const top =
    target === undefined ? file.stages[file.stages.length - 1] : file.stages.find((s) => s.name === target);
  if (top === undefined) throw new Error(`${file.path}: no stage ${target ?? ''}`);
  const chain: Stage[] = [top];
  for (;;) {
    const current = chain[0]!;
    const index = file.stages.indexOf(current);
    const base = substitute(current.from, globals);
    const parent = file.stages.slice(0, index).find((s) => s.name === base);
    if (parent === undefined) {
      return {
        from: base,
        name: top.name,
        instructions: chain.flatMap((s) => s.instructions),
      };
    }
    chain.unshift(parent);
  }
}

/** `${NAME}` and `$NAME` replaced from `vars`; unknown names become empty, as in Docker. */
export function substitute(text: string, vars: Readonly<Record<string, string | undefined>>): string {
  return text.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (_m, braced: string | undefined, bare: string | undefined) => vars[(braced ?? bare)!] ?? '',
  );
}

/** The JSON (exec) form of CMD / ENTRYPOINT / HEALTHCHECK CMD, or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((p) => typeof p === 'string')) {
    throw new Error(`not a JSON list of strings: ${args}`);
  }
  return parsed;
}

export function instructionsOf(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

/**
 * The stage's build arguments after `build args` are applied: ARG defaults, overridden by the
 * given values (only for declared ARGs, as in Docker).
 */
export function stageArgs(
  stage: Stage,
  buildArgs: Readonly<Record<string, string>> = {},
): Record<string, string | undefined> {
  const vars: Record<string, string | undefined> = {};
  for (const arg of instructionsOf(stage, 'ARG')) {
    const word = shellWords(arg.args)[0] ?? '';
    const eq = word.indexOf('=');
    const name = eq < 0 ? word : word.slice(0, eq);
    vars[name] = buildArgs[name] ?? (eq < 0 ? undefined : word.slice(eq + 1));
  }
  return vars;
}

/** Every ENV of the stage, in order, with build arguments (and earlier ENVs) substituted. */
export function stageEnv(
  stage: Stage,
  buildArgs: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const args = stageArgs(stage, buildArgs);
  const env: Record<string, string> = {};
  for (const instruction of instructionsOf(stage, 'ENV')) {
    for (const [key, value] of Object.entries(keyValues(instruction.args))) {
      env[key] = substitute(value, { ...args, ...env });
    }
  }
  return env;
}

/** Every LABEL of the stage, merged. */
export function stageLabels(stage: Stage): Record<string, string> {
  return Object.assign({}, ...instructionsOf(stage, 'LABEL').map((l) => keyValues(l.args))) as Record<
    string,
    string
  >;
}

/** HEALTHCHECK options (`--interval=10s` → interval: '10s') and its command. */
export function healthcheckOf(
  stage: Stage,
): { options: Record<string, string>; command: string[] | string } | undefined {
  const found = instructionsOf(stage, 'HEALTHCHECK');
  const last = found[found.length - 1];
  if (last === undefined) return undefined;
  const options: Record<string, string> = {};
  let rest = last.args;
  for (let m = /^--([a-z-]+)=(\S+)\s+/.exec(rest); m !== null; m = /^--([a-z-]+)=(\S+)\s+/.exec(rest)) {
    options[m[1]!] = m[2]!;
    rest = rest.slice(m[0].length);
  }
  if (/^NONE$/i.test(rest)) return { options, command: 'NONE' };
  const cmd = /^CMD\s+(.*)$/is.exec(rest);
  if (cmd === null) throw new Error(`HEALTHCHECK without CMD: ${last.args}`);
  return { options, command: execForm(cmd[1]!.trim()) ?? cmd[1]!.trim() };
}

/** `FROM image:tag` pinned: an explicit version tag (x.y.z somewhere in it) or a digest, never latest. */
export function isPinnedImage(image: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const slash = image.lastIndexOf('/');
  const colon = image.indexOf(':', slash + 1);
  if (colon < 0) return false;
  const tag = image.slice(colon + 1);
  return tag !== 'latest' && /\d+\.\d+\.\d+/.test(tag);
}
