export * from './demo-checkpoints';
export * from './faiss-index.writer';
export * from './imagebind-checkpoint.writer';
export * from './sentencepiece-model.writer';
