// Bundles bench/decoder/run.mjs into one file for the GPU machine (no Node.js modules there but
// the ones carried): the libraries come from tools/gpu/bundle-slices.mjs, onnxruntime-node stays
// external (its binding and libonnxruntime travel beside the bundle).
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

export default {
  input: here('../../bench/decoder/run.mjs'),
  platform: 'node',
  external: ['onnxruntime-node'],
  resolve: {
    alias: {
      '@imagebind-llm/model-builder': here('./bundle-slices.mjs'),
      '@imagebind-llm/inference': here('./bundle-slices.mjs'),
      '@imagebind-llm/serving': here('./serving-absent.mjs'),
    },
  },
  output: { format: 'esm', codeSplitting: false },
};
