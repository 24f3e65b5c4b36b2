// Reads docker-compose files the way docker-compose does, closely enough for the static checks in
// compose.spec.ts: YAML with merge keys, `${VAR}` interpolation, and overlay files merged onto the
// base. compose.int-spec.ts compares the result with `docker-compose config` itself, so a
// difference between this reader and the real tool fails a test instead of hiding a mistake.
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { parse } from 'yaml';

export const repoRoot = resolve(__dirname, '..', '..', '..');

export type Env = Readonly<Record<string, string | undefined>>;

/** Thrown for a `${VAR:?message}` whose variable is missing, like docker-compose. */
export class MissingVariableError extends Error {
  constructor(
    readonly variable: string,
    readonly hint: string,
  ) {
    super(`${variable} must be set: ${hint}`);
  }
}

const REFERENCE = /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/** Compose interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}. */
export function interpolate(text: string, env: Env): string {
  return text.replace(
    REFERENCE,
    (
      _match,
      dollar: string | undefined,
      braced: string | undefined,
      colon: string | undefined,
      operator: string | undefined,
      operand: string | undefined,
      bare: string | undefined,
    ) => {
      if (dollar !== undefined) return '$';
      const name = (braced ?? bare)!;
      const value = env[name];
      // With the colon an empty value counts as missing too.
      const missing = value === undefined || (colon === ':' && value === '');
      if (operator === '-') return missing ? (operand ?? '') : value;
      if (operator === '?') {
        if (missing) throw new MissingVariableError(name, operand ?? '');
        return value;
      }
      return value ?? '';
    },
  );
}

function interpolateTree(node: unknown, env: Env): unknown {
  if (typeof node === 'string') return interpolate(node, env);
  if (Array.isArray(node)) return node.map((item) => interpolateTree(item, env));
  if (isRecord(node)) {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateTree(v, env)]));
  }
  return node;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Overlay semantics for what our overlays set: maps merge key by key, anything else is replaced. */
export function mergeOverlay(base: unknown, overlay: unknown): unknown {
  if (isRecord(base) && isRecord(overlay)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(overlay)) out[key] = mergeOverlay(base[key], value);
    return out;
  }
  return overlay === undefined ? base : overlay;
}

/** The YAML of one compose file, merge keys (`<<: *anchor`) resolved, nothing interpolated. */
export function readComposeYaml(file: string): Record<string, unknown> {
  const doc: unknown = parse(readFileSync(join(repoRoot, file), 'utf8'), { merge: true });
  if (!isRecord(doc)) throw new Error(`${file} is not a YAML mapping`);
  return doc;
}

export interface VolumeMount {
  readonly type: 'bind' | 'volume';
  /** Host path (bind, resolved against the repository root) or volume name. */
  readonly source: string;
  /** The source as written, after interpolation. */
  readonly written: string;
  readonly target: string;
  readonly readOnly: boolean;
}

export interface PortMapping {
  readonly hostIp: string | undefined;
  readonly published: string;
  readonly target: number;
}

export interface ComposeService {
  readonly name: string;
  readonly image: string | undefined;
  readonly build: { context: string; dockerfile: string; args: Record<string, string> } | undefined;
  readonly environment: Record<string, string>;
  /** Variables listed without a value (taken from the shell at run time). */
  readonly passThrough: string[];
  readonly envFiles: string[];
  readonly volumes: VolumeMount[];
  readonly tmpfs: string[];
  readonly ports: PortMapping[];
  readonly readOnly: boolean;
  readonly dependsOn: Record<string, string>;
  readonly networks: string[];
  readonly healthcheck: { test: unknown; disable: boolean } | undefined;
  readonly gpuDevices: { driver: unknown; capabilities: unknown }[];
  readonly raw: Record<string, unknown>;
}

export interface ComposeProject {
  readonly services: Record<string, ComposeService>;
  readonly volumes: string[];
  readonly networks: Record<string, { internal: boolean }>;
}

function strings(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.map(String);
  throw new Error(`expected a string or a list, got ${JSON.stringify(value)}`);
}

function scalar(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new Error(`expected a scalar, got ${JSON.stringify(value)}`);
}

function environmentOf(value: unknown): { env: Record<string, string>; passThrough: string[] } {
  const env: Record<string, string> = {};
  const passThrough: string[] = [];
  const entries: [string, unknown][] = Array.isArray(value)
    ? value.map((item) => {
        const text = String(item);
        const eq = text.indexOf('=');
        return eq < 0 ? [text, null] : [text.slice(0, eq), text.slice(eq + 1)];
      })
    : isRecord(value)
      ? Object.entries(value)
      : [];
  for (const [key, v] of entries) {
    if (v === null || v === undefined) passThrough.push(key);
    else env[key] = scalar(v);
  }
  return { env, passThrough };
}

function volumeOf(value: unknown): VolumeMount {
  if (typeof value === 'string') {
    const parts = value.split(':');
    if (parts.length === 1)
      return { type: 'volume', source: '', written: '', target: value, readOnly: false };
    const [source = '', target = '', mode = ''] = parts;
    const bind = source.startsWith('.') || source.startsWith('/') || source.startsWith('~');
    return {
      type: bind ? 'bind' : 'volume',
      source: bind ? resolve(repoRoot, source) : source,
      written: source,
      target,
      readOnly: mode.split(',').includes('ro'),
    };
  }
  if (isRecord(value)) {
    const source = scalar(value['source'] ?? '');
    const bind = value['type'] === 'bind';
    return {
      type: bind ? 'bind' : 'volume',
      source: bind && !isAbsolute(source) ? resolve(repoRoot, source) : source,
      written: source,
      target: scalar(value['target']),
      readOnly: value['read_only'] === true,
    };
  }
  throw new Error(`unreadable volume ${JSON.stringify(value)}`);
}

function portOf(value: unknown): PortMapping {
  if (isRecord(value)) {
    return {
      hostIp: value['host_ip'] === undefined ? undefined : scalar(value['host_ip']),
      published: scalar(value['published'] ?? ''),
      target: Number(value['target']),
    };
  }
  const text = scalar(value).replace(/\/(tcp|udp)$/, '');
  const parts = text.split(':');
  const target = Number(parts.pop());
  const published = parts.pop() ?? '';
  return { hostIp: parts.length > 0 ? parts.join(':') : undefined, published, target };
}

function dependsOnOf(value: unknown): Record<string, string> {
  if (Array.isArray(value)) return Object.fromEntries(value.map((s) => [String(s), 'service_started']));
  if (!isRecord(value)) return {};
  return Object.fromEntries(
    Object.entries(value).map(([name, spec]) => [
      name,
      isRecord(spec) && typeof spec['condition'] === 'string' ? spec['condition'] : 'service_started',
    ]),
  );
}

function gpuDevicesOf(deploy: unknown): { driver: unknown; capabilities: unknown }[] {
  if (!isRecord(deploy)) return [];
  const resources = deploy['resources'];
  const reservations = isRecord(resources) ? resources['reservations'] : undefined;
  const devices = isRecord(reservations) ? reservations['devices'] : undefined;
  if (!Array.isArray(devices)) return [];
  return devices.filter(isRecord).map((d) => ({ driver: d['driver'], capabilities: d['capabilities'] }));
}

function serviceOf(name: string, raw: Record<string, unknown>): ComposeService {
  const { env, passThrough } = environmentOf(raw['environment']);
  const build = raw['build'];
  const buildSpec =
    typeof build === 'string'
      ? { context: build, dockerfile: 'Dockerfile', args: {} }
      : isRecord(build)
        ? {
            context: scalar(build['context'] ?? '.'),
            dockerfile: scalar(build['dockerfile'] ?? 'Dockerfile'),
            args: environmentOf(build['args']).env,
          }
        : undefined;
  const health = raw['healthcheck'];
  const networks = raw['networks'];
  return {
    name,
    image: raw['image'] === undefined ? undefined : scalar(raw['image']),
    build: buildSpec,
    environment: env,
    passThrough,
    envFiles: strings(raw['env_file']),
    volumes: (Array.isArray(raw['volumes']) ? raw['volumes'] : []).map(volumeOf),
    tmpfs: strings(raw['tmpfs']),
    ports: (Array.isArray(raw['ports']) ? raw['ports'] : []).map(portOf),
    readOnly: raw['read_only'] === true,
    dependsOn: dependsOnOf(raw['depends_on']),
    networks: Array.isArray(networks)
      ? networks.map(String)
      : isRecord(networks)
        ? Object.keys(networks)
        : ['default'],
    healthcheck: isRecord(health) ? { test: health['test'], disable: health['disable'] === true } : undefined,
    gpuDevices: gpuDevicesOf(raw['deploy']),
    raw,
  };
}

/** The project compose would run for `-f files[0] -f files[1] ...` with the given environment. */
export function loadCompose(files: readonly string[], env: Env): ComposeProject {
  let merged: unknown = {};
  for (const file of files) merged = mergeOverlay(merged, readComposeYaml(file));
  return projectOf(interpolateTree(merged, env));
}

/** A project from a compose document: one of ours, or what `docker-compose config` prints. */
export function projectOf(doc: unknown): ComposeProject {
  if (!isRecord(doc) || !isRecord(doc['services'])) throw new Error('a compose document without services');
  const services: Record<string, ComposeService> = {};
  for (const [name, raw] of Object.entries(doc['services'])) {
    if (!isRecord(raw)) throw new Error(`service ${name} is not a mapping`);
    services[name] = serviceOf(name, raw);
  }
  const networks: Record<string, { internal: boolean }> = {};
  if (isRecord(doc['networks'])) {
    for (const [name, spec] of Object.entries(doc['networks'])) {
      networks[name] = { internal: isRecord(spec) && spec['internal'] === true };
    }
  }
  return {
    services,
    volumes: isRecord(doc['volumes']) ? Object.keys(doc['volumes']) : [],
    networks,
  };
}
