export * from './vector-store.port';
export {
  EMBEDDED_DEFAULTS,
  EmbeddedVectorStore,
  type EmbeddedVectorStoreOptions,
  type HnswOptions,
  type ImportRowsOptions,
  type ImportRowsResult,
  type IndexKind,
  type IvfOptions,
  type Quantization,
} from './embedded.driver';
export {
  defaultIvfLists,
  IVF_DEFAULTS,
  IvfBuilder,
  IvfIndex,
  type IvfBuildOptions,
  type IvfBuildProgress,
} from './ivf';
export { exactTopK, exactTopKBatch, innerProductScore, scalarTopK, TopK, type RowHit } from './exact-top-k';
export {
  DEFAULT_MIN_ROWS_PER_THREAD,
  ExactScanPool,
  type ExactScanPoolOptions,
  type ScanJob,
} from './scan-pool';
export { sharedFloat32, sharedFloat64 } from './shared-memory';
export {
  FAISS_IMPORT_DEFAULT_BATCH,
  importFaissIndex,
  isRowImporter,
  type FaissImportOptions,
  type RowImporter,
  type FaissImportResult,
} from './faiss-import';
export {
  checkCollectionName,
  checkDimension,
  checkId,
  checkIds,
  checkK,
  checkPoints,
  checkQueries,
  COLLECTION_NAME,
  MAX_DIMENSION,
  MAX_K,
} from './validation';
