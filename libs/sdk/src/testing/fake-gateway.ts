// A scripted GatewayService + BatchJobService on loopback, hosted by a plain grpc-js Server with
// the generated ts-proto definitions, so the SDK is tested against the real wire protocol.
import {
  type Metadata,
  Server,
  ServerCredentials,
  status,
  type ServerUnaryCall,
  type ServerWritableStream,
  type StatusObject,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { commonV1, gatewayV1 } from '@imagebind-llm/proto';

export type FakeHandlers = Partial<gatewayV1.GatewayServiceServer & gatewayV1.BatchJobServiceServer>;
export type FakeMethod = keyof gatewayV1.GatewayServiceServer | keyof gatewayV1.BatchJobServiceServer;

/** One call the fake received. */
export interface RecordedCall {
  readonly method: FakeMethod;
  readonly request: unknown;
  readonly metadata: Metadata;
  /** True once the client cancelled the call (or its deadline passed). */
  readonly wasCancelled: () => boolean;
  /** Resolves when the client cancels the call. */
  readonly cancelled: Promise<void>;
}

export interface FakeGateway {
  /** `127.0.0.1:<port>`. */
  readonly address: string;
  readonly port: number;
  readonly calls: RecordedCall[];
  callsTo(method: FakeMethod): RecordedCall[];
  /** Stops at once, cutting open streams. */
  stop(): Promise<void>;
}

const GATEWAY_METHODS = Object.keys(
  gatewayV1.GatewayServiceService,
) as (keyof gatewayV1.GatewayServiceServer)[];
const JOB_METHODS = Object.keys(
  gatewayV1.BatchJobServiceService,
) as (keyof gatewayV1.BatchJobServiceServer)[];

type AnyCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;
type AnyHandler = (call: AnyCall, callback?: (error: unknown, value?: unknown) => void) => void;

export async function startFakeGateway(
  handlers: FakeHandlers,
  credentials: ServerCredentials = ServerCredentials.createInsecure(),
): Promise<FakeGateway> {
  const calls: RecordedCall[] = [];
  const implement = (methods: readonly FakeMethod[]): UntypedServiceImplementation => {
    const impl: UntypedServiceImplementation = {};
    for (const method of methods) {
      const handler = handlers[method] as AnyHandler | undefined;
      const wrapped: AnyHandler = (call, callback) => {
        let cancelled = false;
        calls.push({
          method,
          request: call.request,
          metadata: call.metadata,
          wasCancelled: () => cancelled,
          cancelled: new Promise<void>((resolve) =>
            call.on('cancelled', () => {
              cancelled = true;
              resolve();
            }),
          ),
        });
        if (handler !== undefined) {
          handler(call, callback);
        } else if (callback !== undefined) {
          callback({ code: status.UNIMPLEMENTED, details: `fake: ${method} is not scripted` });
        } else {
          failStream(call as ServerWritableStream<unknown, unknown>, {
            code: status.UNIMPLEMENTED,
            details: `fake: ${method} is not scripted`,
          });
        }
      };
      impl[method] = wrapped as UntypedServiceImplementation[string];
    }
    return impl;
  };
  const server = new Server();
  server.addService(gatewayV1.GatewayServiceService, implement(GATEWAY_METHODS));
  server.addService(gatewayV1.BatchJobServiceService, implement(JOB_METHODS));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    port,
    calls,
    callsTo: (method) => calls.filter((c) => c.method === method),
    stop: async () => {
      server.forceShutdown();
      await Promise.resolve();
    },
  };
}

/**
 * Ends a server stream with an error status after the messages already written, as grpc-js does
 * for an 'error' event on a server stream.
 */
export function failStream(
  call: ServerWritableStream<unknown, unknown>,
  error: Partial<StatusObject> & { code: status },
): void {
  call.emit('error', error);
}

/** A FLOAT32 tensor of `values`, little-endian as the contract requires. */
export function float32Tensor(
  values: readonly number[],
  shape: readonly number[] = [values.length],
): commonV1.Tensor {
  const data = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => data.writeFloatLE(v, i * 4));
  return { dtype: commonV1.DataType.DATA_TYPE_FLOAT32, shape: [...shape], data };
}

/** Little-endian float32 bytes of `values`. */
export function float32Bytes(values: readonly number[]): Buffer {
  return float32Tensor(values).data;
}

/** A GenerateResponse carrying a text delta. */
export function token(text: string, tokenIds: number[] = [text.length]): gatewayV1.GenerateResponse {
  return { text, tokenIds, finishReason: gatewayV1.FinishReason.FINISH_REASON_UNSPECIFIED };
}

/** The last GenerateResponse of an answer. */
export function finalToken(
  text: string,
  usage: gatewayV1.GenerateUsage = {
    promptTokens: 12,
    completionTokens: 3,
    timeToFirstTokenMs: 40,
    tokensPerSecond: 25,
    seed: 7,
  },
): gatewayV1.GenerateResponse {
  return { text, tokenIds: [99], finishReason: gatewayV1.FinishReason.FINISH_REASON_STOP, usage };
}

/** A BatchJob with the given id and state, for scripted job answers. */
export function batchJob(jobId: string, state: gatewayV1.BatchJobState): gatewayV1.BatchJob {
  return {
    jobId,
    kind: gatewayV1.BatchJobKind.BATCH_JOB_KIND_EMBED,
    state,
    progress: { total: 2, succeeded: 0, failed: 0, cancelled: 0 },
    errorMessage: '',
  };
}

/** The first value of a metadata key, as a string. */
export function metadataValue(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === 'string' ? value : undefined;
}
