// The local JSONL manifest of `ibllm batch submit`: every line is validated (and every local file
// checked) before anything is read in full or sent, so one run reports every mistake at once.
import { readFileSync, statSync } from 'node:fs';
import { basename, isAbsolute, resolve } from 'node:path';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  guessMediaType,
  MODALITY_BY_NAME,
  Modality,
  type BatchItemInput,
  type MultimodalInput,
} from '@imagebind-llm/client';

/** The gateway's default per-input limit (GATEWAY_MAX_INPUT_BYTES). */
export const DEFAULT_MAX_INPUT_BYTES = 32 * 1024 * 1024;

/**
 * Inline bytes one submit may carry: the SDK's (and gateway's) message limit less room for the
 * rest of the request (ids, instructions, protobuf framing).
 */
export const MAX_INLINE_TOTAL_BYTES = DEFAULT_MAX_MESSAGE_BYTES - 1024 * 1024;

const ITEM_KEYS = new Set(['id', 'inputs', 'instruction', 'input']);
const INPUT_KEYS = new Set(['modality', 'uri', 'text', 'file', 'weight', 'media_type']);

export interface ManifestError {
  /** 1-based line number; undefined for errors about the manifest as a whole. */
  readonly line: number | undefined;
  readonly message: string;
}

export interface ManifestOptions {
  /** Directory `file` paths are relative to (the manifest's own directory). */
  readonly baseDir: string;
  /** Largest local file sent inline. */
  readonly maxInputBytes: number;
  /** Every item needs an instruction (generate jobs) unless a job-wide one is given. */
  readonly needsInstruction: boolean;
  /** Items may carry `instruction`/`input` (generate jobs only). */
  readonly allowsInstruction: boolean;
}

/** A validated input whose file, if any, is read only once the whole manifest is valid. */
type PendingInput =
  | { readonly kind: 'ready'; readonly input: MultimodalInput }
  | {
      readonly kind: 'file';
      readonly modality: Modality;
      readonly path: string;
      readonly weight: number | undefined;
      readonly mediaType: string;
    };

interface PendingItem {
  readonly line: number;
  readonly id: string | undefined;
  readonly inputs: PendingInput[];
  readonly instruction: string | undefined;
  readonly input: string | undefined;
}

export type ManifestResult =
  | { readonly ok: true; readonly items: BatchItemInput[]; readonly inlineBytes: number }
  | { readonly ok: false; readonly errors: ManifestError[] };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalString(
  obj: Record<string, unknown>,
  key: string,
  at: string,
  fail: (message: string) => void,
): string | undefined {
  const value = obj[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') {
    fail(`${at}${key} must be a string`);
    return undefined;
  }
  return value;
}

/**
 * Parses and validates manifest text. Local files are stat'ed (exists, regular, not empty, within
 * `maxInputBytes`) during validation and read only when no line has an error.
 */
export function parseManifest(text: string, options: ManifestOptions): ManifestResult {
  const errors: ManifestError[] = [];
  const items: PendingItem[] = [];
  const idLines = new Map<string, number>();
  let inlineBytes = 0;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const fail = (message: string): void => {
      errors.push({ line, message });
    };
    if (raw.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (error) {
      fail(`not valid JSON (${(error as Error).message})`);
      return;
    }
    if (!isObject(parsed)) {
      fail('each line must be a JSON object such as {"id": "item-1", "inputs": [...]}');
      return;
    }
    for (const key of Object.keys(parsed)) {
      if (!ITEM_KEYS.has(key))
        fail(`unknown key ${JSON.stringify(key)}; items have ${[...ITEM_KEYS].join(', ')}`);
    }
    const id = optionalString(parsed, 'id', '', fail);
    if (id !== undefined) {
      if (id === '') fail('id must not be empty');
      const first = idLines.get(id);
      if (first !== undefined) fail(`id ${JSON.stringify(id)} is already used on line ${first}`);
      else idLines.set(id, line);
    }
    const instruction = optionalString(parsed, 'instruction', '', fail);
    const input = optionalString(parsed, 'input', '', fail);
    if (!options.allowsInstruction && (instruction !== undefined || input !== undefined)) {
      fail('instruction and input are only used by --kind generate');
    }
    if (options.needsInstruction && (instruction === undefined || instruction.trim() === '')) {
      fail('needs an "instruction" (or pass --instruction for every item)');
    }
    const inputs: PendingInput[] = [];
    const rawInputs = parsed['inputs'];
    if (!Array.isArray(rawInputs) || rawInputs.length === 0) {
      fail('inputs must be a non-empty array');
    } else {
      rawInputs.forEach((value: unknown, j) => {
        const pending = parseInput(value, `inputs[${j}].`, options, fail);
        if (pending === undefined) return;
        if (pending.kind === 'file') {
          const size = checkFile(pending.path, `inputs[${j}].file`, options.maxInputBytes, fail);
          inlineBytes += size ?? 0;
        }
        inputs.push(pending);
      });
    }
    items.push({ line, id, inputs, instruction, input });
  });
  if (items.length === 0 && errors.length === 0) {
    errors.push({ line: undefined, message: 'the manifest has no items' });
  }
  if (inlineBytes > MAX_INLINE_TOTAL_BYTES) {
    errors.push({
      line: undefined,
      message:
        `local files add up to ${inlineBytes} bytes, over the ${MAX_INLINE_TOTAL_BYTES} one request can carry; ` +
        'split the manifest, or put the files where the gateway can fetch them ("uri") or use --manifest-uri',
    });
  }
  if (errors.length > 0) return { ok: false, errors };
  // Reading can still fail (a file removed since it was checked): report those by line too.
  const ready: BatchItemInput[] = [];
  for (const item of items) {
    const inputs: MultimodalInput[] = [];
    item.inputs.forEach((pending, j) => {
      if (pending.kind === 'ready') {
        inputs.push(pending.input);
        return;
      }
      try {
        inputs.push({
          modality: pending.modality,
          ...(pending.weight === undefined ? {} : { weight: pending.weight }),
          source: { $case: 'content', value: readFileSync(pending.path) },
          mediaType: pending.mediaType,
        });
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
        errors.push({
          line: item.line,
          message: `inputs[${j}].file: cannot read ${pending.path} (${reason})`,
        });
      }
    });
    ready.push({
      ...(item.id === undefined ? {} : { itemId: item.id }),
      inputs,
      ...(item.instruction === undefined ? {} : { instruction: item.instruction }),
      ...(item.input === undefined ? {} : { input: item.input }),
    });
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, items: ready, inlineBytes };
}

function parseInput(
  value: unknown,
  at: string,
  options: ManifestOptions,
  fail: (message: string) => void,
): PendingInput | undefined {
  if (!isObject(value)) {
    fail(`${at.slice(0, -1)} must be an object such as {"modality": "image", "uri": "https://..."}`);
    return undefined;
  }
  let problems = 0;
  const failHere = (message: string): void => {
    problems++;
    fail(message);
  };
  for (const key of Object.keys(value)) {
    if (!INPUT_KEYS.has(key)) {
      failHere(`${at}${key}: unknown key; inputs have ${[...INPUT_KEYS].join(', ')}`);
    }
  }
  const modalityName = value['modality'];
  const byName: Readonly<Record<string, Modality | undefined>> = MODALITY_BY_NAME;
  const modality = typeof modalityName === 'string' ? byName[modalityName] : undefined;
  if (modality === undefined) {
    failHere(
      `${at}modality must be one of ${Object.keys(MODALITY_BY_NAME).join(', ')}, got ${JSON.stringify(modalityName)}`,
    );
  }
  const weight = value['weight'];
  if (weight !== undefined && (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0)) {
    failHere(`${at}weight must be a number > 0, got ${JSON.stringify(weight)}`);
  }
  const mediaType = optionalString(value, 'media_type', at, failHere);
  const sources = (['uri', 'text', 'file'] as const).filter((k) => value[k] !== undefined);
  if (sources.length !== 1) {
    failHere(`${at.slice(0, -1)} needs exactly one of "uri", "text" or "file"`);
    return undefined;
  }
  const source = sources[0]!;
  const sourceValue = value[source];
  if (typeof sourceValue !== 'string' || sourceValue.trim() === '') {
    failHere(`${at}${source} must be a non-empty string`);
    return undefined;
  }
  if (modality === Modality.MODALITY_TEXT && source !== 'text') {
    failHere(`${at}modality "text" takes "text", not "${source}"`);
  }
  if (modality !== undefined && modality !== Modality.MODALITY_TEXT && source === 'text') {
    failHere(`${at}text is only for modality "text"; use "uri" or "file" for ${String(modalityName)}`);
  }
  if (source === 'file' && /^[a-z][a-z0-9+.-]*:\/\//i.test(sourceValue)) {
    failHere(
      `${at}file ${JSON.stringify(sourceValue)} looks like a URI; use "uri" to let the gateway fetch it`,
    );
  }
  if (problems > 0 || modality === undefined) return undefined;
  const weightPart = weight === undefined ? {} : { weight: weight as number };
  if (source === 'file') {
    const path = isAbsolute(sourceValue) ? sourceValue : resolve(options.baseDir, sourceValue);
    // The point loader picks its parser by extension, so point clouds send their file name.
    const guessed = modality === Modality.MODALITY_POINT_CLOUD ? basename(path) : guessMediaType(path);
    return {
      kind: 'file',
      modality,
      path,
      weight: weight as number | undefined,
      mediaType: mediaType ?? guessed,
    };
  }
  return {
    kind: 'ready',
    input: {
      modality,
      ...weightPart,
      source: source === 'uri' ? { $case: 'uri', value: sourceValue } : { $case: 'text', value: sourceValue },
      mediaType: mediaType ?? '',
    },
  };
}

/** Checks a local file without reading it; returns its size when it is usable. */
function checkFile(
  path: string,
  at: string,
  maxInputBytes: number,
  fail: (message: string) => void,
): number | undefined {
  let size: number;
  try {
    const stat = statSync(path);
    if (!stat.isFile()) {
      fail(`${at}: ${path} is not a regular file`);
      return undefined;
    }
    size = stat.size;
  } catch (error) {
    fail(`${at}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    return undefined;
  }
  if (size === 0) {
    fail(`${at}: ${path} is empty`);
    return undefined;
  }
  if (size > maxInputBytes) {
    fail(
      `${at}: ${path} is ${size} bytes, over the per-input limit of ${maxInputBytes} (--max-input-bytes); ` +
        'use "uri" for large media',
    );
    return undefined;
  }
  return size;
}
