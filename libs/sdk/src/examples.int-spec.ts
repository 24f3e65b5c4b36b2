// Runs the shipped examples against a fake gateway, so they keep compiling and working as the
// SDK changes (their README commands run the same main() functions from the compiled .mjs files).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerWritableStream } from '@grpc/grpc-js';
import { commonV1, type gatewayV1 } from '@imagebind-llm/proto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  finalToken,
  float32Tensor,
  metadataValue,
  startFakeGateway,
  token,
  type FakeGateway,
  type FakeHandlers,
} from './testing/fake-gateway';

const dir = mkdtempSync(join(tmpdir(), 'sdk-examples-'));
const photo = join(dir, 'girl.jpg');
const music = join(dir, 'girl_bgm.wav');
writeFileSync(photo, Buffer.from([0xff, 0xd8, 0xff, 0xe0]));
writeFileSync(music, Buffer.from('RIFF....WAVE'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fakes: FakeGateway[] = [];
afterEach(async () => {
  for (const fake of fakes.splice(0)) await fake.stop();
});

async function fake(handlers: FakeHandlers): Promise<FakeGateway> {
  const started = await startFakeGateway(handlers);
  fakes.push(started);
  return started;
}

describe('examples', () => {
  it('generate-stream prints the streamed answer with usage', async () => {
    const gateway = await fake({
      generate: (call: ServerWritableStream<gatewayV1.GenerateRequest, gatewayV1.GenerateResponse>) => {
        call.write(token('A girl'));
        call.write(finalToken(' sings.'));
        call.end();
      },
    });
    const { main } = await import('../examples/generate-stream.mjs');
    let output = '';
    await main([gateway.address, photo, music, 'What is happening?'], (t) => (output += t), 'key-1');
    expect(output).toMatch(/^A girl sings\.\n\[stop: 3 tokens, 25\.0 tokens\/s, request [0-9a-f-]{36}\]\n$/);
    const call = gateway.callsTo('generate')[0]!;
    const request = call.request as gatewayV1.GenerateRequest;
    expect(request.inputs.map((i) => [i.modality, i.mediaType, i.weight])).toEqual([
      [commonV1.Modality.MODALITY_IMAGE, 'image/jpeg', 1],
      [commonV1.Modality.MODALITY_AUDIO, 'audio/wav', 1],
    ]);
    expect(request.instruction).toBe('What is happening?');
    expect(metadataValue(call.metadata, 'authorization')).toBe('Bearer key-1');
  });

  it('embed-and-search prints the cosine similarity (not the raw dot product) and the hits', async () => {
    const gateway = await fake({
      embed: (_call, callback) =>
        callback(null, {
          embeddings: [
            // Text comes scaled by its logit scale (norm 10 here): the dot product would be 9.6.
            { modality: commonV1.Modality.MODALITY_TEXT, embedding: float32Tensor([6, 8]) },
            { modality: commonV1.Modality.MODALITY_IMAGE, embedding: float32Tensor([0.8, 0.6]) },
          ],
          fused: float32Tensor([0.6, 0.8]),
        }),
      search: (_call, callback) =>
        callback(null, { hits: [{ id: 3, score: 0.75, payload: { caption: 'a dog' } }] }),
    });
    const { main } = await import('../examples/embed-and-search.mjs');
    const lines: string[] = [];
    await main([gateway.address, 'a dog', photo], (line) => lines.push(line), undefined);
    expect(lines).toEqual([
      'embedding size: 2',
      'norms: text 10.0000, image 1.0000',
      'text-image cosine similarity: 0.9600',
      'fused query norm: 1.0000',
      'top 1 stored items for "a dog":',
      '  #3  score 0.7500  {"caption":"a dog"}',
    ]);
  });

  it('round-robin spreads its calls over the replicas it is given', async () => {
    const handlers: FakeHandlers = {
      listModels: (_call, callback) =>
        callback(null, { models: [{ name: 'llama-decoder', version: '1', ready: true }] }),
    };
    const [a, b] = [await fake(handlers), await fake(handlers)];
    const { main } = await import('../examples/round-robin.mjs');
    const lines: string[] = [];
    await main([`localhost:${a.port}`, `localhost:${b.port}`], (line) => lines.push(line), undefined);
    expect(lines).toHaveLength(10);
    expect(lines[0]).toBe('call 1: 1 models, ready: llama-decoder@1');
    expect([a.calls.length, b.calls.length]).toEqual([5, 5]);
  });
});
