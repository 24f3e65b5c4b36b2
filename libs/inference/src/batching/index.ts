export * from './batcher-clock';
export * from './dynamic-batcher';
