export * from './logger';
export * from './metrics';
export * from './tracing';
export * from './nest-logger';
export * from './memory-log';
