// What bench/decoder/run.mjs needs from the libraries, taken from the source files themselves so
// the device check's bundle holds the decoder graph builder and the onnxruntime session driver
// and nothing else (the libraries' index files also load image, audio and vector-store modules
// with native parts the GPU machine does not have). Used only by tools/gpu/rolldown.config.mjs.
export {
  adapterLlamaKeys,
  buildDecoderGraph,
  buildStateGraph,
  hostDecoderGraph,
  llamaBaseKeys,
  stepDecoderGraph,
} from '../../libs/model-builder/src/llama.builder';
export { GraphBuilder, OnnxType } from '../../libs/model-builder/src/onnx/onnx-graph';
export { QUANT_BLOCK_SIZE, QUANT_BLOCK_SIZES } from '../../libs/model-builder/src/onnx/linear-weights';
export { writeGraph } from '../../libs/model-builder/src/repository-writer';
export { WeightStore } from '../../libs/model-builder/src/weights';
export { createOrtSession, WEBGPU_VALIDATION_MODES } from '../../libs/inference/src/ort-session.driver';
export { hostTensor } from '../../libs/inference/src/session.port';
export { isStateRef } from '../../libs/inference/src/session-state';
export { GenerationEngine, STEP_GRAPH_INPUTS } from '../../libs/inference/src/generation/generation-engine';
export { readOrtProfile } from '../../libs/inference/src/ort-profile';
