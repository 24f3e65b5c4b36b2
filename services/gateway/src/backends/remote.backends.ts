import type { Client } from '@grpc/grpc-js';
import { callServerStream, callUnary, createClient, type RetryPolicy } from '@imagebind-llm/grpc-kit';
import { bindV1, decoderV1, encoderV1, retrieverV1 } from '@imagebind-llm/proto';
import type {
  BindBackend,
  DecoderBackend,
  EncoderBackend,
  HopContext,
  PlatformBackends,
  RetrieverBackend,
  RoutedModality,
} from '@imagebind-llm/serving/platform';

/** Where each service listens. A value is `host:port`, a comma list of them, or a grpc-js target. */
export interface RemoteTargets {
  readonly encoders: Partial<Record<RoutedModality, string>>;
  readonly retriever: string;
  readonly bind: string;
  readonly decoder: string;
}

/**
 * Turns `a:1,b:2` into a grpc-js target that resolves every address, so `round_robin` spreads calls
 * over the replicas (HTTP/2 would otherwise stick to one, ARCHITECTURE §7). `dns:///svc:port`
 * (a headless Service) and other scheme targets pass through unchanged.
 */
export function toGrpcTarget(value: string): string {
  const trimmed = value.trim();
  if (/^[a-z][a-z0-9+.-]*:(?!\d)/i.test(trimmed) && !/^[^:]+:\d+$/.test(trimmed)) return trimmed;
  const parts = trimmed
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (parts.length === 1) return parts[0]!;
  const v6 = parts.some((p) => p.startsWith('['));
  return `${v6 ? 'ipv6' : 'ipv4'}:${parts.join(',')}`;
}

export interface RemoteOptions {
  readonly hopTimeoutMs: number;
  /** Retries of the idempotent hops (the contracts' idempotency_level); grpc-kit's default otherwise. */
  readonly retry?: RetryPolicy;
  readonly maxMessageBytes: number;
}

/**
 * The distributed driver: generated gRPC clients with deadlines and request ids. Retries are the
 * clients' own (grpc-kit's interceptor, for the methods the contracts declare idempotent); the
 * Generate stream is resumed by the orchestrator from the tokens already sent.
 */
export class RemoteBackends implements PlatformBackends {
  readonly mode = 'distributed';
  readonly retriever: RetrieverBackend;
  readonly bind: BindBackend;
  readonly decoder: DecoderBackend;
  private readonly encoders = new Map<RoutedModality, EncoderBackend>();
  private readonly clients: Client[] = [];

  constructor(
    targets: RemoteTargets,
    private readonly options: RemoteOptions,
  ) {
    const clientOptions = {
      maxReceiveMessageBytes: options.maxMessageBytes,
      ...(options.retry === undefined ? {} : { retry: options.retry }),
    };
    const encoderClients = new Map<string, encoderV1.EncoderServiceClient>();
    for (const [modality, target] of Object.entries(targets.encoders) as [RoutedModality, string][]) {
      const grpcTarget = toGrpcTarget(target);
      let client = encoderClients.get(grpcTarget);
      if (client === undefined) {
        client = this.track(createClient(encoderV1.EncoderServiceClient, grpcTarget, clientOptions));
        encoderClients.set(grpcTarget, client);
      }
      const c = client;
      this.encoders.set(modality, {
        encode: (req, ctx) => callUnary(c.encode.bind(c), req, this.settings(ctx)),
      });
    }
    const r = this.track(
      createClient(retrieverV1.RetrieverServiceClient, toGrpcTarget(targets.retriever), clientOptions),
    );
    this.retriever = {
      search: (req, ctx) => callUnary(r.search.bind(r), req, this.settings(ctx)),
      getCollection: (req, ctx) => callUnary(r.getCollection.bind(r), req, this.settings(ctx)),
    };
    const b = this.track(createClient(bindV1.BindServiceClient, toGrpcTarget(targets.bind), clientOptions));
    this.bind = {
      project: (req, ctx) => callUnary(b.project.bind(b), req, this.settings(ctx)),
    };
    const d = this.track(
      createClient(decoderV1.DecoderServiceClient, toGrpcTarget(targets.decoder), clientOptions),
    );
    this.decoder = {
      tokenize: (req, ctx) => callUnary(d.tokenize.bind(d), req, this.settings(ctx)),
      generate: (req, ctx) => callServerStream(d.generate.bind(d), req, { parent: ctx }),
      getModelStatus: (ctx) => callUnary(d.getModelStatus.bind(d), {}, this.settings(ctx)),
    };
  }

  private track<C extends Client>(client: C): C {
    this.clients.push(client);
    return client;
  }

  /** Each unary hop gets its own timeout (covering its retries), capped by the client's deadline. */
  private settings(ctx: HopContext): { parent: HopContext; timeoutMs: number } {
    return { parent: ctx, timeoutMs: this.options.hopTimeoutMs };
  }

  encoder(modality: RoutedModality): EncoderBackend | undefined {
    return this.encoders.get(modality);
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    await Promise.resolve();
  }
}
