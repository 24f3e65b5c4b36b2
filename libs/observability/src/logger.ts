import { randomUUID } from 'node:crypto';
import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/** Metadata key / HTTP header that carries the request id across every hop. */
export const REQUEST_ID_KEY = 'x-request-id';

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** A fresh request id (UUID v4). */
export function newRequestId(): string {
  return randomUUID();
}

/**
 * The request id to use for an incoming call: the caller's, when it is a sane token, otherwise a
 * new one (a hostile or garbled id must not end up in our logs verbatim).
 */
export function acceptRequestId(incoming: unknown): string {
  return typeof incoming === 'string' && REQUEST_ID_PATTERN.test(incoming) ? incoming : newRequestId();
}

export interface LoggerConfig {
  /** Service name, stamped on every line as `service`. */
  readonly service: string;
  /** Minimum level written. */
  readonly level: string;
  /** Where lines go; standard output by default. */
  readonly destination?: DestinationStream;
}

/**
 * One JSON object per line on stdout: `level` as a word, `time` in ISO-8601, `service`, `msg`, and
 * `requestId` on every line logged for a request. Error objects are serialised with their stack.
 */
export function createLogger(config: LoggerConfig): Logger {
  const options: LoggerOptions = {
    level: config.level,
    base: { service: config.service },
    messageKey: 'msg',
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
  };
  return config.destination === undefined ? pino(options) : pino(options, config.destination);
}

/** A child logger that stamps `requestId` on every line. */
export function requestLogger(
  logger: Logger,
  requestId: string,
  bindings: Record<string, unknown> = {},
): Logger {
  return logger.child({ requestId, ...bindings });
}
