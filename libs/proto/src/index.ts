// Public entry of the generated contracts. One namespace per protobuf package, because several
// packages define messages with the same name (GenerateRequest, GetModelStatusRequest, ...).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export * as commonV1 from './common-v1';
export * as encoderV1 from './generated/imagebind/encoder/v1/encoder';
export * as retrieverV1 from './generated/imagebind/retriever/v1/retriever';
export * as bindV1 from './generated/imagebind/bind/v1/bind';
export * as decoderV1 from './generated/imagebind/decoder/v1/decoder';
export * as gatewayV1 from './gateway-v1';
export { idempotencyLevel, isIdempotent, type IdempotencyLevel } from './idempotency';

/** Fully qualified service names, as used by health checks and reflection. */
export const SERVICE_NAMES = {
  encoder: 'imagebind.encoder.v1.EncoderService',
  retriever: 'imagebind.retriever.v1.RetrieverService',
  bind: 'imagebind.bind.v1.BindService',
  decoder: 'imagebind.decoder.v1.DecoderService',
  gateway: 'imagebind.gateway.v1.GatewayService',
  batchJobs: 'imagebind.gateway.v1.BatchJobService',
} as const;

/**
 * The serialized FileDescriptorSet of every contract (with comments), for server reflection.
 * Generated next to the code by `npm run proto:generate`.
 */
export function loadDescriptorSet(): Buffer {
  // Both src/ and dist/ sit one level below the package root.
  return readFileSync(join(__dirname, '..', 'descriptors', 'imagebind.binpb'));
}
