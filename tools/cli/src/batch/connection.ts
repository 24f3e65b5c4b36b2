import { readFileSync } from 'node:fs';
import { ImageBindClient, isImageBindError } from '@imagebind-llm/client';
import { CliError, optionalInt } from '../cli-error';

/** parseArgs options every `ibllm batch` subcommand accepts. */
export const CONNECTION_OPTIONS = {
  gateway: { type: 'string' },
  'api-key': { type: 'string' },
  'api-key-file': { type: 'string' },
  timeout: { type: 'string' },
} as const;

export const CONNECTION_USAGE = `Connection (flags only; no environment variables are read):
  --gateway HOST:PORT[,HOST:PORT...]  gateway address(es), balanced round-robin (default 127.0.0.1:50051)
  --api-key KEY | --api-key-file F    API key, sent as "authorization: Bearer KEY"
  --timeout MS                        deadline of each call (default 30000; results streams: none)`;

export const DEFAULT_GATEWAY = '127.0.0.1:50051';

export type ConnectionFlags = {
  readonly gateway?: string | undefined;
  readonly 'api-key'?: string | undefined;
  readonly 'api-key-file'?: string | undefined;
  readonly timeout?: string | undefined;
};

export interface Connection {
  readonly client: ImageBindClient;
  /** `--timeout`, when given. */
  readonly timeoutMs: number | undefined;
}

function addresses(text: string): string[] {
  const list = text
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  if (list.length === 0) throw new CliError('--gateway needs at least one HOST:PORT');
  for (const a of list) {
    // A gRPC target with a scheme (dns:///name:port, unix:...) passes through as the SDK takes it.
    if (/^(dns|unix|ipv4|ipv6):/.test(a)) continue;
    if (!/^(\[[0-9a-f:.]+\]|[^\s:/[\]]+):\d{1,5}$/i.test(a)) {
      throw new CliError(`--gateway: ${JSON.stringify(a)} is not HOST:PORT`);
    }
  }
  return list;
}

function apiKey(values: ConnectionFlags): string | undefined {
  const inline = values['api-key'];
  const file = values['api-key-file'];
  if (inline !== undefined && file !== undefined)
    throw new CliError('give --api-key or --api-key-file, not both');
  if (inline !== undefined) {
    if (inline.trim() === '') throw new CliError('--api-key is empty');
    return inline.trim();
  }
  if (file === undefined) return undefined;
  let key: string;
  try {
    key = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new CliError(
      `--api-key-file: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  if (key === '' || /\s/.test(key)) {
    throw new CliError(`--api-key-file: ${file} must hold the key alone on one line`);
  }
  return key;
}

/** A client for the gateway the flags name. */
export function connect(values: ConnectionFlags): Connection {
  const timeoutMs = optionalInt(values, 'timeout', 1, 7 * 24 * 3600 * 1000);
  const key = apiKey(values);
  const client = new ImageBindClient({
    addresses: addresses(values.gateway ?? DEFAULT_GATEWAY),
    ...(key === undefined ? {} : { apiKey: key }),
    ...(timeoutMs === undefined ? {} : { timeoutMs, streamTimeoutMs: timeoutMs }),
  });
  return { client, timeoutMs };
}

/**
 * An SDK error as the one line the CLI prints (`ibllm: <code>: <message>`): exit status 2 for
 * INVALID_ARGUMENT (the request was wrong), 1 for everything else.
 */
export function toCliError(error: unknown): unknown {
  if (!isImageBindError(error)) return error;
  let message = error.details.replace(/\s*\n\s*/g, ' ').trim();
  if (error.field !== undefined && !message.includes(error.field)) message += ` (field ${error.field})`;
  return new CliError(`${error.code}: ${message}`, error.code === 'INVALID_ARGUMENT' ? 2 : 1);
}
