import { createHash } from 'node:crypto';
import { gatewayV1, type BatchItemInput, type BatchJobKind } from '@imagebind-llm/client';

export interface TokenSource {
  readonly kind: BatchJobKind;
  readonly instruction: string;
  readonly collection: string;
  /** Inline items (file contents included), or none with `manifestUri`. */
  readonly items: readonly BatchItemInput[];
  readonly manifestUri: string;
}

/**
 * The default idempotency key of a submit: a SHA-256 of everything the job is made of (kind,
 * job-wide options, and each item as its protobuf encoding, so local file contents count), so
 * running the same submit again returns the job it created instead of starting a duplicate, while
 * any change to the work (a different file, instruction or kind) makes a new job.
 */
export function defaultClientToken(source: TokenSource): string {
  const hash = createHash('sha256');
  const field = (bytes: Uint8Array | string): void => {
    const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
    // Length-prefixed, so no two different field sequences hash the same bytes.
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(data.byteLength));
    hash.update(length).update(data);
  };
  field('ibllm-batch-submit/v1');
  field(String(source.kind));
  field(source.instruction);
  field(source.collection);
  field(source.manifestUri);
  for (const item of source.items) {
    const wire: gatewayV1.BatchItem = {
      itemId: item.itemId ?? '',
      inputs: [...item.inputs],
      instruction: item.instruction ?? '',
      input: item.input ?? '',
    };
    field(gatewayV1.BatchItem.encode(wire).finish());
  }
  return `ibllm-${hash.digest('hex').slice(0, 40)}`;
}
