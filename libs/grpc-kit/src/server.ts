import { Server, ServerCredentials, type ChannelOptions, type ServiceDefinition } from '@grpc/grpc-js';
import { loadFileDescriptorSetFromBuffer } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { Logger, ServiceMetrics } from '@imagebind-llm/observability';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import {
  implementService,
  tolerantMethod,
  type ServiceDefinitionLike,
  type ServiceHandlers,
} from './handlers';

export interface GrpcServerOptions {
  /** Interface to bind, e.g. `127.0.0.1` or `0.0.0.0`. */
  readonly host: string;
  /** Port to bind; 0 picks a free one (see `GrpcServer.port` after start). */
  readonly port: number;
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  /** Largest request message accepted, in bytes; larger ones get RESOURCE_EXHAUSTED from grpc-js. */
  readonly maxReceiveMessageBytes: number;
  /** Largest response message sent, in bytes. */
  readonly maxSendMessageBytes?: number;
  /** Serialized FileDescriptorSet of the served contracts, for the reflection service. */
  readonly descriptorSet?: Buffer;
  /** Extra grpc-js channel options. */
  readonly channelOptions?: ChannelOptions;
}

/** The overall health entry (`""`), which Kubernetes' gRPC probe checks by default. */
export const OVERALL_HEALTH = '';

/**
 * A grpc-js server with the platform's conventions: typed handlers wrapped by `implementService`,
 * `grpc.health.v1.Health` (every registered service plus the overall entry start NOT_SERVING until
 * `setReady(true)`), server reflection, and a two-phase shutdown (stop accepting and let calls
 * drain, then force-close what is left after the grace period).
 */
export class GrpcServer {
  private readonly server: Server;
  private readonly health: HealthImplementation;
  private readonly serviceNames: string[] = [];
  private readonly shutdownController = new AbortController();
  private boundPort: number | undefined;
  private ready = false;
  private reflecting = false;

  constructor(private readonly options: GrpcServerOptions) {
    this.server = new Server({
      'grpc.max_receive_message_length': options.maxReceiveMessageBytes,
      'grpc.max_send_message_length': options.maxSendMessageBytes ?? options.maxReceiveMessageBytes,
      // Send keepalive pings so dead clients are noticed and their streams cancelled.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      // Clients balance round-robin over the addresses they resolved, and re-resolve only when a
      // connection ends: retiring connections after ~5 minutes (GOAWAY; calls in flight finish)
      // lets pods added by a scale-up receive traffic without restarting the callers.
      'grpc.max_connection_age_ms': 300_000,
      ...options.channelOptions,
    });
    this.health = new HealthImplementation({ [OVERALL_HEALTH]: 'NOT_SERVING' });
    this.health.addToServer(this.server);
  }

  /**
   * Reflection over the contracts' descriptor set, listing only the services this server hosts
   * (and health): the descriptor set holds every contract, and a public port that advertised
   * internal services would only invite calls answered UNIMPLEMENTED.
   */
  private addReflection(): void {
    if (this.options.descriptorSet === undefined || this.reflecting) return;
    this.reflecting = true;
    const definition = loadFileDescriptorSetFromBuffer(this.options.descriptorSet, {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    new ReflectionService(definition, {
      services: [...this.serviceNames, 'grpc.health.v1.Health'],
    }).addToServer(this.server);
  }

  /** Registers a service from its generated definition and typed handlers. */
  addService<D extends ServiceDefinitionLike>(
    serviceName: string,
    definition: D,
    handlers: ServiceHandlers<D>,
  ): void {
    if (this.boundPort !== undefined) throw new Error(`cannot add ${serviceName} after the server started`);
    const implementation = implementService(definition, handlers, {
      logger: this.options.logger,
      metrics: this.options.metrics,
      serverSignal: this.shutdownController.signal,
    });
    const tolerant = Object.fromEntries(
      Object.entries(definition).map(([name, method]) => [name, tolerantMethod(method)]),
    );
    this.server.addService(tolerant as unknown as ServiceDefinition, implementation);
    this.serviceNames.push(serviceName);
    this.health.setStatus(serviceName, 'NOT_SERVING');
  }

  /** Binds and starts serving; resolves with the bound port. */
  async start(): Promise<number> {
    this.addReflection();
    const address = `${this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host}:${this.options.port}`;
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, ServerCredentials.createInsecure(), (error, port) => {
        if (error) reject(new Error(`cannot bind gRPC server to ${address}: ${error.message}`));
        else resolve(port);
      });
    });
    this.options.logger.info(
      { event: 'grpc.listening', host: this.options.host, port: this.boundPort, services: this.serviceNames },
      'gRPC server listening',
    );
    return this.boundPort;
  }

  get port(): number {
    if (this.boundPort === undefined) throw new Error('the gRPC server has not started');
    return this.boundPort;
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** Flips every health entry to SERVING (true) or NOT_SERVING (false). */
  setReady(ready: boolean): void {
    this.ready = ready;
    const status: ServingStatus = ready ? 'SERVING' : 'NOT_SERVING';
    this.health.setStatus(OVERALL_HEALTH, status);
    for (const name of this.serviceNames) this.health.setStatus(name, status);
    this.options.metrics.ready.set(ready ? 1 : 0);
  }

  /**
   * Graceful shutdown: report NOT_SERVING, stop accepting calls, wait up to `graceMs` for calls in
   * flight, then abort what is left (handlers see their signal abort) and close every connection.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.boundPort === undefined) return;
    this.setReady(false);
    this.options.logger.info({ event: 'grpc.draining', graceMs }, 'gRPC server draining');
    const drained = new Promise<boolean>((resolve) => {
      this.server.tryShutdown(() => resolve(true));
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    });
    const clean = await Promise.race([drained, timedOut]);
    if (timer !== undefined) clearTimeout(timer);
    if (!clean) {
      this.options.logger.warn(
        { event: 'grpc.force_close' },
        'grace period over; aborting calls still running',
      );
      this.shutdownController.abort(
        new DomainError(
          ErrorCode.DependencyUnavailable,
          'the server is shutting down; retry on another replica',
        ),
      );
      // Give aborted handlers a moment to send their final status before the sockets close.
      await new Promise((resolve) => setTimeout(resolve, 50));
      this.server.forceShutdown();
    }
    this.boundPort = undefined;
    this.options.logger.info({ event: 'grpc.stopped', clean }, 'gRPC server stopped');
  }
}
