export * from '@imagebind-llm/grpc-kit';
export * from './host/index';
export * from './encoder/index';
export * from './bind/index';
export * from './decoder/index';
export * from './retriever/index';
// The port and the orchestration without the runtimes (no onnxruntime) are also `@imagebind-llm/serving/platform`.
export * from './platform/index';
export * from './platform/local.backends';
