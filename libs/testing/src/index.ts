export * from './process-runner';
export * from './grpc-harness';
export * from './strict-fake';
export * from './golden';
export * from './numeric';
export * from './model-repo';
export * from './platform';
export * from './domain-errors';
