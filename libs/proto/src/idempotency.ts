// Which RPCs may be retried, as the contracts declare it. The one source is each RPC's
// `option idempotency_level` in proto/; ts-proto's generic service definitions carry it (the
// grpc-js ones do not), and this file indexes them by method path for clients to look up.
import * as bind from './generated/imagebind/bind/v1/bind';
import * as decoder from './generated/imagebind/decoder/v1/decoder';
import * as encoder from './generated/imagebind/encoder/v1/encoder';
import * as batch from './generated/imagebind/gateway/v1/batch';
import * as gateway from './generated/imagebind/gateway/v1/gateway';
import * as retriever from './generated/imagebind/retriever/v1/retriever';

/** `google.protobuf.MethodOptions.IdempotencyLevel`, as ts-proto names it. */
export type IdempotencyLevel = 'IDEMPOTENCY_UNKNOWN' | 'NO_SIDE_EFFECTS' | 'IDEMPOTENT';

interface GenericServiceDefinition {
  readonly fullName: string;
  readonly methods: Readonly<
    Record<string, { readonly name: string; readonly options: { readonly idempotencyLevel?: string } }>
  >;
}

function isServiceDefinition(value: unknown): value is GenericServiceDefinition {
  const v = value as Partial<GenericServiceDefinition> | null;
  return (
    typeof v === 'object' && v !== null && typeof v.fullName === 'string' && typeof v.methods === 'object'
  );
}

function indexLevels(): ReadonlyMap<string, IdempotencyLevel> {
  const levels = new Map<string, IdempotencyLevel>();
  for (const module of [bind, decoder, encoder, batch, gateway, retriever]) {
    for (const exported of Object.values(module) as unknown[]) {
      if (!isServiceDefinition(exported)) continue;
      for (const method of Object.values(exported.methods)) {
        const level = method.options.idempotencyLevel;
        if (level === 'NO_SIDE_EFFECTS' || level === 'IDEMPOTENT') {
          levels.set(`/${exported.fullName}/${method.name}`, level);
        }
      }
    }
  }
  return levels;
}

const LEVELS = indexLevels();

/** The declared idempotency of a method, by its gRPC path (`/package.Service/Method`). */
export function idempotencyLevel(path: string): IdempotencyLevel {
  return LEVELS.get(path) ?? 'IDEMPOTENCY_UNKNOWN';
}

/**
 * Whether the contract lets a client send the same request again after a failure:
 * NO_SIDE_EFFECTS (reads, pure computation) or IDEMPOTENT (a repeat changes nothing more, e.g.
 * SubmitBatchJob with its client_token). Everything else is sent once.
 */
export function isIdempotent(path: string): boolean {
  return LEVELS.has(path);
}
