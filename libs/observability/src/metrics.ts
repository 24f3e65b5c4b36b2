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
