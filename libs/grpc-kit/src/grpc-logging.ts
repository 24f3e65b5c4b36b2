import { format } from 'node:util';
import { logVerbosity, setLogger, setLogVerbosity } from '@grpc/grpc-js';

interface WarnLogger {
  warn(obj: object, msg: string): void;
}

/**
 * grpc-js writes its own diagnostics to stderr as plain text. Route them into the service's JSON
 * log instead (at warn, tagged `source: grpc-js`), keeping only errors, so every line a process
 * writes stays machine-readable.
 */
export function routeGrpcLogs(logger: WarnLogger): void {
  const write = (...args: unknown[]): void => logger.warn({ source: 'grpc-js' }, format(...args));
  setLogger({ error: write, warn: write, info: write, debug: write });
  setLogVerbosity(logVerbosity.ERROR);
}
