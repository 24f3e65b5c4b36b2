export {
  checkRedisForQueues,
  createRedis,
  reconnectDelayMs,
  redisConnectionOptions,
  waitForReady,
  type RedisConfigReader,
  type RedisQueueCheck,
  type RedisRole,
} from './connection';
export {
  BATCH_JOB_KINDS,
  BATCH_JOB_NAMES,
  BATCH_QUEUE,
  assertHandlersComplete,
  assertValidJobId,
  isBatchJobKind,
  itemJobId,
  parentJobId,
  type BatchJobKind,
  type BatchJobName,
  type BatchJobPayloads,
} from './job-registry';
export {
  BatchJobStore,
  DEFAULT_RETENTION_S,
  FINAL_STATES,
  decodeOutcome,
  encodeOutcome,
  isFinalState,
  type BatchJobState,
  type BatchJobStoreOptions,
  type CreateJobInput,
  type ItemClaim,
  type ItemOutcome,
  type JobPage,
  type JobRecord,
  type ListJobsOptions,
  type ResultsPage,
} from './batch-job-store';
export {
  BatchQueue,
  ENQUEUE_CHUNK,
  cancelBatchJob,
  type BatchQueueCounts,
  type BatchQueueOptions,
  type EnqueueOptions,
} from './batch-queue';
export {
  startBatchWorker,
  type BatchWorker,
  type BatchWorkerOptions,
  type ItemContext,
} from './batch-worker';
