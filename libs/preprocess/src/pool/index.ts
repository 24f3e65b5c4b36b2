export {
  InThreadPreprocessor,
  PreprocessPool,
  defaultPreprocessWorkerFile,
  type PreprocessPoolOptions,
  type PreprocessRunner,
} from './preprocess-pool';
export {
  runPreprocessTask,
  type TaskBuffers,
  type PreprocessLimits,
  type PreprocessOutput,
  type PreprocessTask,
} from './preprocess-task';
