// k6 has a `console` global (log, info, warn, error, debug, printed by its logger) that @types/k6
// does not declare; the DOM and Node libraries that usually provide it are left out on purpose,
// since k6 implements neither.
declare const console: {
  log(...data: unknown[]): void;
  info(...data: unknown[]): void;
  warn(...data: unknown[]): void;
  error(...data: unknown[]): void;
  debug(...data: unknown[]): void;
};
