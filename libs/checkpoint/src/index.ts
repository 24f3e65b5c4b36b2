export { bufferSource, openFileSource, type ByteSource } from './byte-source';
export { CheckpointFormatError } from './checkpoint.error';
export { crc32 } from './crc32';
export {
  openFaissFlatIndex,
  readFaissFlatIndex,
  readFaissIndex,
  type FaissFlatIndex,
  type FaissFlatIndexData,
  type FaissFlatIndexInfo,
  type FaissFlatType,
  type FaissMetric,
} from './faiss-index.reader';
export {
  encodeFaissFlatHeader,
  FAISS_FLAT_FOURCC,
  FAISS_FLAT_HEADER_BYTES,
  faissFlatIndexBytes,
  writeFaissFlatIndexStream,
  type FaissFlatFourcc,
  type FaissFlatIndexStreamOptions,
  type FaissRowSink,
} from './faiss-index.writer';
export {
  encodeNpy,
  encodeNpyHeader,
  parseNpy,
  parseNpyLayout,
  readNpy,
  readNpyRows,
  writeNpy,
  writeNpyRows,
  type NpyLayout,
  type NpyRowChunk,
} from './npy';
export {
  NOT_HANDLED,
  PickleGlobal,
  PickleObject,
  unpickle,
  type PickleHooks,
  type UnpickleOptions,
} from './pickle-vm';
export {
  encodeSafetensors,
  openSafetensors,
  writeSafetensors,
  type SafetensorsFile,
} from './safetensors.reader';
export {
  syntheticFaissIndexBytes,
  syntheticFaissQueries,
  syntheticFaissRow,
  writeSyntheticFaissIndex,
  type SyntheticFaissOptions,
  type SyntheticFaissQueries,
  type SyntheticFaissResult,
} from './synthetic-faiss-index';
export {
  StateDictMismatchError,
  checkStateDict,
  type KeyAllowance,
  validateStateDict,
  type ShapeMismatch,
  type StateDictProblems,
  type ValidateStateDictOptions,
} from './state-dict.validator';
export { contiguousStrides, gatherStrided, isContiguous } from './strided-copy';
export {
  DTYPES,
  bfloat16BitsToFloat32,
  dtypeItemSize,
  float16BitsToFloat32,
  float32ArrayToFloat16,
  float32Tensor,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  formatShape,
  int64ToFloat32,
  isDType,
  isFloatingDType,
  isTensorEntry,
  shapeNumel,
  toFloat32,
  viewAs,
  type DType,
  type RawTensor,
  type TensorEntry,
} from './tensor';
export { openTensorFile, type OpenTensorFileOptions, type TensorFile } from './tensor-file.reader';
export {
  TorchStorageRef,
  TorchTensorEntry,
  openTorchCheckpoint,
  type TorchCheckpoint,
  type TreePath,
} from './torch-checkpoint.reader';
export {
  planTorchCheckpoint,
  streamedTensor,
  writeTorchCheckpoint,
  type StreamedTensor,
  type TensorByteSink,
  type TorchCheckpointWriteResult,
  type TorchTensorSource,
  type TorchValue,
  type WriteTorchCheckpointOptions,
} from './torch-checkpoint.writer';
export { ZIP_DEFLATED, ZIP_STORED, ZipReader, type ZipEntry } from './zip-reader';
