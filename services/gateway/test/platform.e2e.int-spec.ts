// e2e: every service a real process on loopback (4 encoders, retriever, bind, 2 decoders, gateway),
// the golden tiny-a model repository, and the answers compared with what the official code gave for
// the same request (decode/demo_image+audio_knn-on, embed/image/girl).
import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { callUnary, createClient, readFloat32Tensor } from '@imagebind-llm/grpc-kit';
import { decoderV1, gatewayV1 } from '@imagebind-llm/proto';
import {
  chatBody,
  collectGenerate,
  GOLDEN_DEMO_QUESTION,
  goldenDemoCase,
  goldenDemoChatBody,
  goldenDemoInputs,
  goldenDemoRequest,
  goldenModelRepository,
  goldenPath,
  l2Norm,
  parseChatStream,
  postChatCompletion,
  relativeError,
  startPlatform,
  type RunningPlatform,
  type ServiceProcess,
} from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** The official greedy answer to the demo question on girl.jpg + girl_bgm.wav (cache on). */
const DEMO = goldenDemoCase();
// ‖ours − official‖₂/‖official‖₂ of girl.jpg's embedding through gateway → encoder-vision: the
// preprocessed tensor is bit-identical to the official one and the graph reaches 5.9e-7; 1e-5 is
// the bound the encoder parity tests hold.
const EMBED_REL_TOLERANCE = 1e-5;
const girlEmbedding = toFloat32(readNpy(goldenPath('expected', 'embed', 'girl.npy')));

async function activeSequences(decoder: ServiceProcess): Promise<number> {
  const client = createClient(decoderV1.DecoderServiceClient, decoder.grpcAddress);
  try {
    const status = await callUnary(client.getModelStatus.bind(client), {}, { timeoutMs: 2_000 });
    return status.activeSequences;
  } catch {
    return 0;
  } finally {
    client.close();
  }
}

describe('the distributed platform, every service a process', () => {
  let repo: string;
  let platform: RunningPlatform;
  let client: gatewayV1.GatewayServiceClient;

  beforeAll(async () => {
    repo = goldenModelRepository();
    platform = await startPlatform({ repo, decoderReplicas: 2, visionReplicas: 2 });
    client = createClient(gatewayV1.GatewayServiceClient, platform.gateway.grpcAddress);
  }, 180_000);

  afterAll(async () => {
    client?.close();
    await platform?.stop();
  });

  it('streams the official tokens (image + audio, cache on, greedy: decode/demo_image+audio_knn-on)', async () => {
    expect(DEMO.instruction).toBe(GOLDEN_DEMO_QUESTION);
    const got = await collectGenerate(client, goldenDemoRequest());
    expect(got.ids).toEqual(DEMO.generated_ids);
    expect(got.text.trim()).toBe(DEMO.text_stripped);
    // streamed: one message per token (plus none extra), not one blob at the end
    expect(got.messages).toBeGreaterThanOrEqual(DEMO.generated_ids.length);
  }, 60_000);

  it('gives the official answer through REST with SSE (/v1/chat/completions, stream: true)', async () => {
    const res = await postChatCompletion(platform.gateway.httpBase, goldenDemoChatBody());
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const { events, chunks, text } = parseChatStream(await res.text());
    expect(events.at(-1)).toBe('[DONE]');
    expect(text.trim()).toBe(DEMO.text_stripped);
    expect(chunks.length).toBeGreaterThan(3);
  }, 60_000);

  it('answers `stream: false` and lists the served model', async () => {
    const models = (await (await fetch(`${platform.gateway.httpBase}/v1/models`)).json()) as {
      data: { id: string }[];
    };
    expect(models.data.map((m) => m.id)).toEqual(['imagebind-llm']);
    const res = await postChatCompletion(
      platform.gateway.httpBase,
      chatBody(
        [
          { type: 'text', text: 'Describe it.' },
          { type: 'text', text: 'A dog on a beach.', imagebind_modality: true },
        ],
        { max_tokens: 8, temperature: 0 },
      ),
    );
    expect(res.status).toBe(200);
    const json = (await res.json()) as { object: string; usage: { completion_tokens: number } };
    expect(json.object).toBe('chat.completion');
    expect(json.usage.completion_tokens).toBe(8);
  });

  it('kill -9 of the decoder serving a stream: the client still gets the complete answer, no gaps, no duplicates', async () => {
    // Greedy, so the resumed replica's answer is exactly determined: its re-prefill of prompt + sent
    // tokens equals step-by-step decoding to rounding, which moves no argmax here (a sampled stream
    // draws the same numbers but may cross a boundary now and then: decoder.proto, operations §3.4).
    const request: gatewayV1.GenerateRequest = {
      ...goldenDemoRequest(),
      sampling: { temperature: 0, seed: 1234 },
      stopping: { maxNewTokens: 160 },
    };
    const reference = await collectGenerate(client, request);
    expect(reference.ids.slice(0, DEMO.generated_ids.length)).toEqual(DEMO.generated_ids);
    expect(reference.ids.length).toBeGreaterThan(40);
    let killed: string | undefined;
    const got = await collectGenerate(client, request, async (_m, received) => {
      if (killed !== undefined || received < 5) return;
      const decoders = platform.byName('decoder-');
      for (const d of decoders) {
        if ((await activeSequences(d)) > 0) {
          killed = d.name;
          d.proc.child.kill('SIGKILL');
          return;
        }
      }
    });
    expect(killed, 'a decoder was serving the stream and was killed').toBeDefined();
    const resumes = platform.gateway.proc.lines.filter((l) => l['event'] === 'decoder.resume');
    expect(resumes.length).toBeGreaterThan(0);
    // resumed mid-answer: tokens were sent before the break and generated after it
    const sentBefore = resumes[0]!['sentTokens'] as number;
    expect(sentBefore).toBeGreaterThanOrEqual(5);
    expect(sentBefore).toBeLessThan(reference.ids.length);
    expect(got.ids).toEqual(reference.ids);
    expect(got.text).toBe(reference.text);
  }, 120_000);

  it('kill -9 of one encoder-vision replica: requests still complete, with the official embedding', async () => {
    const [victim] = platform.byName('encoder-vision-');
    victim!.proc.child.kill('SIGKILL');
    await victim!.proc.exited();
    const image = goldenDemoInputs().slice(0, 1);
    for (let i = 0; i < 4; i++) {
      const r = await callUnary(
        client.embed.bind(client),
        { inputs: image, includeFused: true },
        { timeoutMs: 30_000 },
      );
      expect(r.embeddings).toHaveLength(1);
      const { data } = readFloat32Tensor(r.embeddings[0]!.embedding, 'embedding');
      expect(relativeError(data, girlEmbedding), `request ${i}`).toBeLessThanOrEqual(EMBED_REL_TOLERANCE);
      expect(Math.abs(l2Norm(data) - l2Norm(girlEmbedding))).toBeLessThanOrEqual(EMBED_REL_TOLERANCE);
    }
  }, 60_000);
});
