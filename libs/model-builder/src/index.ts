export * from './onnx/proto-writer';
export * from './onnx/onnx-graph';
export * from './onnx/external-data.sink';
export * from './onnx/ops';
export * from './weights';
export * from './bind.builder';
export * from './llama.builder';
export * from './repository.builder';
