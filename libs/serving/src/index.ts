export * from '@imagebind-llm/grpc-kit';
export * from './encoder/index';
export * from './bind/index';
export * from './decoder/index';
export * from './retriever/retriever.service-impl';
export * from './retriever/cache-seed';
export * from './retriever/seed-progress';
// The port and the orchestration without the runtimes (no onnxruntime) are also `@imagebind-llm/serving/platform`.
export * from './platform/index';
export * from './platform/local.backends';
