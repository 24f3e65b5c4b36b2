import { describe, expect, it } from 'vitest';
import { idempotencyLevel, isIdempotent } from './idempotency';

describe('idempotency from the contracts', () => {
  it('reads each declared idempotency_level from the generated definitions', () => {
    expect(idempotencyLevel('/imagebind.encoder.v1.EncoderService/Encode')).toBe('NO_SIDE_EFFECTS');
    expect(idempotencyLevel('/imagebind.bind.v1.BindService/Project')).toBe('NO_SIDE_EFFECTS');
    expect(idempotencyLevel('/imagebind.retriever.v1.RetrieverService/Search')).toBe('NO_SIDE_EFFECTS');
    expect(idempotencyLevel('/imagebind.retriever.v1.RetrieverService/Upsert')).toBe('IDEMPOTENT');
    expect(idempotencyLevel('/imagebind.gateway.v1.BatchJobService/SubmitBatchJob')).toBe('IDEMPOTENT');
    expect(isIdempotent('/imagebind.decoder.v1.DecoderService/Tokenize')).toBe(true);
    expect(isIdempotent('/imagebind.gateway.v1.GatewayService/Embed')).toBe(true);
    expect(isIdempotent('/imagebind.gateway.v1.GatewayService/EmbedMany')).toBe(true);
  });

  it('treats undeclared and unknown methods as unsafe to repeat', () => {
    for (const path of [
      '/imagebind.decoder.v1.DecoderService/Generate',
      '/imagebind.gateway.v1.GatewayService/Generate',
      '/imagebind.gateway.v1.BatchJobService/CancelBatchJob',
      '/imagebind.retriever.v1.RetrieverService/Delete',
      '/imagebind.retriever.v1.RetrieverService/ImportIndex',
      '/grpc.health.v1.Health/Check',
      'Encode',
    ]) {
      expect(isIdempotent(path), path).toBe(false);
      expect(idempotencyLevel(path), path).toBe('IDEMPOTENCY_UNKNOWN');
    }
  });
});
