export * from './retriever.service-impl';
export * from './cache-seed';
export * from './seed-progress';
export { retrieverEnvSchema, type RetrieverEnv } from './host/retriever-env.schema';
export {
  openRetrieverStore,
  RetrieverStoreRuntime,
  type OpenQdrant,
  type QdrantStoreSettings,
} from './host/retriever-store';
export { runRetrieverService, type RetrieverServiceOptions } from './host/run-retriever-service';
