import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Latency buckets in seconds, from sub-millisecond hops to minute-long generations. */
export const LATENCY_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
];

/**
 * The metrics every service exports. gRPC names and labels follow go-grpc-prometheus
 * (`grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}`), so the usual
 * dashboards and alerts work unchanged; process metrics come from prom-client's defaults.
 */
export class ServiceMetrics {
  readonly registry: Registry;
  readonly grpcServerStarted: Counter<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  readonly grpcServerHandled: Counter<'grpc_type' | 'grpc_service' | 'grpc_method' | 'grpc_code'>;
  readonly grpcServerHandlingSeconds: Histogram<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  readonly grpcServerMsgSent: Counter<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  readonly grpcClientHandled: Counter<'grpc_type' | 'grpc_service' | 'grpc_method' | 'grpc_code'>;
  readonly grpcClientHandlingSeconds: Histogram<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  readonly ready: Gauge;

  constructor(readonly service: string) {
    this.registry = new Registry();
    this.registry.setDefaultLabels({ service });
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.grpcServerStarted = new Counter({
      name: 'grpc_server_started_total',
      help: 'RPCs started on the server.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
      registers,
    });
    this.grpcServerHandled = new Counter({
      name: 'grpc_server_handled_total',
      help: 'RPCs completed on the server, by status code.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'],
      registers,
    });
    this.grpcServerHandlingSeconds = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Time from RPC start to its final status, in seconds.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.grpcServerMsgSent = new Counter({
      name: 'grpc_server_msg_sent_total',
      help: 'Stream messages sent by the server.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
      registers,
    });
    this.grpcClientHandled = new Counter({
      name: 'grpc_client_handled_total',
      help: 'RPCs completed by this process as a client, by status code.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'],
      registers,
    });
    this.grpcClientHandlingSeconds = new Histogram({
      name: 'grpc_client_handling_seconds',
      help: 'Client-side RPC latency in seconds.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.ready = new Gauge({
      name: 'ibllm_ready',
      help: '1 when the process reports ready (models loaded, accepting traffic), else 0.',
      registers,
    });
  }

  /** Prometheus text exposition of every metric. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/**
 * What an inference service exports beyond the gRPC series: batcher queue depth (the autoscaling
 * signal, ARCHITECTURE §7), batch sizes, queue delay and execute time; for the decoder, time to
 * first token, generated tokens and tokens/s, active sequences and free KV positions.
 */
export class InferenceMetrics {
  readonly queueDepth: Gauge<'model'>;
  readonly batchSize: Histogram<'model'>;
  readonly queueDelaySeconds: Histogram<'model'>;
  readonly batchExecuteSeconds: Histogram<'model'>;
  readonly requests: Counter<'model' | 'outcome'>;
  readonly timeToFirstTokenSeconds: Histogram<'model'>;
  readonly generatedTokens: Counter<'model'>;
  readonly tokensPerSecond: Histogram<'model'>;
  readonly activeSequences: Gauge<'model'>;
  readonly freeKvPositions: Gauge<'model'>;
  readonly transferBytes: Counter<'model' | 'direction' | 'phase'>;
  readonly stepTransferBytesPerRow: Gauge<'model' | 'direction'>;

  constructor(metrics: ServiceMetrics) {
    const registers = [metrics.registry];
    this.queueDepth = new Gauge({
      name: 'ibllm_batcher_queue_depth',
      help: 'Units waiting in the dynamic batcher (KEDA scales on this).',
      labelNames: ['model'],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'ibllm_batch_size',
      help: 'Units per executed batch.',
      labelNames: ['model'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.queueDelaySeconds = new Histogram({
      name: 'ibllm_batch_queue_delay_seconds',
      help: 'How long the oldest request of a batch waited before dispatch.',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.batchExecuteSeconds = new Histogram({
      name: 'ibllm_batch_execute_seconds',
      help: 'Model execution time per batch.',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.requests = new Counter({
      name: 'ibllm_inference_requests_total',
      help: 'Inference requests by outcome (ok, overloaded, expired, cancelled, failed, invalid).',
      labelNames: ['model', 'outcome'],
      registers,
    });
    this.timeToFirstTokenSeconds = new Histogram({
      name: 'ibllm_time_to_first_token_seconds',
      help: 'From accepting a generation to its first token.',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.generatedTokens = new Counter({
      name: 'ibllm_generated_tokens_total',
      help: 'Tokens generated.',
      labelNames: ['model'],
      registers,
    });
    this.tokensPerSecond = new Histogram({
      name: 'ibllm_generation_tokens_per_second',
      help: 'Decode speed of each finished generation (after its first token).',
      labelNames: ['model'],
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers,
    });
    this.activeSequences = new Gauge({
      name: 'ibllm_decoder_active_sequences',
      help: 'Sequences in the running decode batch.',
      labelNames: ['model'],
      registers,
    });
    this.freeKvPositions = new Gauge({
      name: 'ibllm_decoder_free_kv_positions',
      help: 'KV cache positions left in the memory budget.',
      labelNames: ['model'],
      registers,
    });
    this.transferBytes = new Counter({
      name: 'ibllm_decoder_transfer_bytes_total',
      help:
        'Bytes between the host and where the decoder session runs (to_session: ids, lengths, write ' +
        'indices, host-held offsets; from_session: logits), by phase. The KV cache never crosses.',
      labelNames: ['model', 'direction', 'phase'],
      registers,
    });
    this.stepTransferBytesPerRow = new Gauge({
      name: 'ibllm_decoder_step_transfer_bytes_per_row',
      help: 'Bytes per row of the latest decode step, by direction (constant in the context length).',
      labelNames: ['model', 'direction'],
      registers,
    });
  }
}

/** BullMQ job counts by state, as `BatchQueue.counts()` reports them. */
export interface QueueJobCounts {
  readonly waiting: number;
  readonly prioritized: number;
  readonly active: number;
  readonly delayed: number;
}

const QUEUE_JOB_STATES = ['waiting', 'prioritized', 'active', 'delayed'] as const;

/**
 * `ibllm_batch_queue_jobs{queue,state}`: the batch backlog, read from Redis at scrape time. KEDA
 * scales batch workers on waiting + prioritized (ARCHITECTURE §7); the gateway exports it too, so
 * the signal exists while the workers are scaled to zero. A failed read leaves the last values
 * and counts the failure, rather than failing the whole scrape.
 */
export function registerQueueJobsGauge(
  metrics: ServiceMetrics,
  queue: string,
  read: () => Promise<QueueJobCounts>,
): void {
  const registers = [metrics.registry];
  const failures = new Counter({
    name: 'ibllm_batch_queue_read_failures_total',
    help: 'Scrapes whose read of the batch queue counts from Redis failed.',
    labelNames: ['queue'],
    registers,
  });
  new Gauge({
    name: 'ibllm_batch_queue_jobs',
    help: 'Batch item jobs in the BullMQ queue by state (KEDA scales workers on waiting + prioritized).',
    labelNames: ['queue', 'state'],
    registers,
    async collect() {
      try {
        const counts = await read();
        for (const state of QUEUE_JOB_STATES) this.set({ queue, state }, counts[state]);
      } catch {
        failures.inc({ queue });
      }
    },
  });
}

/** What a preprocessing pool reports (PreprocessPool.stats()), as its metrics read it. */
export interface PreprocessPoolSnapshot {
  readonly queued: number;
  readonly running: number;
  readonly workers: number;
  readonly answers: number;
  readonly answerMessages: number;
}

/**
 * The preprocessing pool's series (issue #15), read from `source` at each scrape: inputs waiting
 * for a worker, workers running one, workers started, and the tasks answered with the messages
 * they came in (their quotient is how many answers the serving thread takes per wake-up). Before
 * the pool starts (`source` gives undefined) every series reads 0.
 */
export class PreprocessMetrics {
  constructor(metrics: ServiceMetrics, source: () => PreprocessPoolSnapshot | undefined) {
    const registers = [metrics.registry];
    const gauge = (name: string, help: string, key: 'queued' | 'running' | 'workers'): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(source()?.[key] ?? 0);
        },
      });
    };
    gauge(
      'ibllm_preprocess_queued',
      'Inputs waiting for a preprocessing worker (queued or sent ahead).',
      'queued',
    );
    gauge('ibllm_preprocess_running', 'Preprocessing workers running an input.', 'running');
    gauge('ibllm_preprocess_workers', 'Preprocessing worker threads started.', 'workers');
    const counter = (name: string, help: string, key: 'answers' | 'answerMessages'): void => {
      let counted = 0;
      new Counter({
        name,
        help,
        registers,
        collect() {
          const now = source()?.[key] ?? 0;
          if (now > counted) this.inc(now - counted);
          counted = Math.max(counted, now);
        },
      });
    };
    counter('ibllm_preprocess_answers_total', 'Inputs the preprocessing workers answered.', 'answers');
    counter(
      'ibllm_preprocess_answer_messages_total',
      'Messages those answers came in (several small inputs share one under load).',
      'answerMessages',
    );
  }
}
