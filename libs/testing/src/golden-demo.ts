// The official demo request (girl.jpg + girl_bgm.wav and its question) as the platform's tests send
// it, through gRPC and REST, and what the official code answered to it.
import { readFileSync } from 'node:fs';
import { callServerStream } from '@imagebind-llm/grpc-kit';
import { commonV1, gatewayV1 } from '@imagebind-llm/proto';
import { goldenCase, goldenPath, type GoldenCase } from './golden';

/** The official demo's question on girl.jpg + girl_bgm.wav. */
export const GOLDEN_DEMO_QUESTION =
  "Guess the girl's mood based on the background music and explain the reason?";

/** decode/demo_image+audio_knn-on: the fields the tests read. */
export type GoldenDemoCase = GoldenCase & {
  readonly instruction: string;
  readonly generated_ids: number[];
  readonly text_stripped: string;
};

/** What the official code answered for girl.jpg + girl_bgm.wav and the demo question (greedy, cache on). */
export function goldenDemoCase(): GoldenDemoCase {
  return goldenCase('decode/demo_image+audio_knn-on') as GoldenDemoCase;
}

/** The official demo's inputs (girl.jpg + girl_bgm.wav, weight 1 each) as public API inputs. */
export function goldenDemoInputs(): gatewayV1.MultimodalInput[] {
  return [
    {
      modality: commonV1.Modality.MODALITY_IMAGE,
      source: { $case: 'content', value: readFileSync(goldenPath('inputs', 'girl.jpg')) },
      mediaType: 'image/jpeg',
    },
    {
      modality: commonV1.Modality.MODALITY_AUDIO,
      source: { $case: 'content', value: readFileSync(goldenPath('inputs', 'girl_bgm.wav')) },
      mediaType: 'audio/wav',
    },
  ];
}

/** The demo as a GenerateRequest: girl.jpg + girl_bgm.wav and the question; greedy, 24 new tokens. */
export function goldenDemoRequest(): gatewayV1.GenerateRequest {
  return {
    inputs: goldenDemoInputs(),
    instruction: GOLDEN_DEMO_QUESTION,
    input: '',
    sampling: { temperature: 0 },
    stopping: { maxNewTokens: 24 },
  };
}

/** A chat completion body for the served model: one user message of `content` parts, and `fields`. */
export function chatBody(
  content: readonly unknown[],
  fields: Record<string, unknown> = {},
): Record<string, unknown> {
  return { model: 'imagebind-llm', ...fields, messages: [{ role: 'user', content }] };
}

/**
 * The demo as an OpenAI chat completion body, as the README asks it: the question, girl.jpg and
 * girl_bgm.wav as base64 parts; greedy, 24 new tokens, streamed (SSE).
 */
export function goldenDemoChatBody(): Record<string, unknown> {
  const image = readFileSync(goldenPath('inputs', 'girl.jpg')).toString('base64');
  const audio = readFileSync(goldenPath('inputs', 'girl_bgm.wav')).toString('base64');
  return chatBody(
    [
      { type: 'text', text: GOLDEN_DEMO_QUESTION },
      { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${image}` } },
      { type: 'input_audio', input_audio: { data: audio, format: 'wav' } },
    ],
    { stream: true, temperature: 0, max_tokens: 24 },
  );
}

/** POSTs `body` as JSON to `${httpBase}/v1/chat/completions`. */
export async function postChatCompletion(httpBase: string, body: unknown): Promise<Response> {
  return fetch(`${httpBase}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** One chunk of a streamed chat completion: the fields the tests read. */
export interface ChatStreamChunk {
  readonly choices: { readonly delta: { readonly content?: string } }[];
}

/** A streamed chat completion's SSE body, taken apart. */
export interface ChatStream {
  /** Every `data:` payload in order, `[DONE]` included. */
  readonly events: string[];
  /** The payloads before a final `[DONE]`, parsed (a `[DONE]` anywhere else fails to parse). */
  readonly chunks: ChatStreamChunk[];
  /** The text the chunks' deltas carry, joined. */
  readonly text: string;
}

/** Takes a streamed chat completion's SSE body apart; asserts nothing, the caller does. */
export function parseChatStream(body: string): ChatStream {
  const events = body
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice('data: '.length));
  const payloads = events.at(-1) === '[DONE]' ? events.slice(0, -1) : events;
  const chunks = payloads.map((e) => JSON.parse(e) as ChatStreamChunk);
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  return { events, chunks, text };
}

/** What one Generate stream delivered. */
export interface CollectedGeneration {
  readonly ids: number[];
  readonly text: string;
  /** The last finish reason a message carried (UNSPECIFIED when none did). */
  readonly finish: gatewayV1.FinishReason;
  /** How many messages the stream had. */
  readonly messages: number;
}

/** Reads a whole Generate stream (60 s deadline); `onMessage` sees each message as it comes. */
export async function collectGenerate(
  client: gatewayV1.GatewayServiceClient,
  request: gatewayV1.GenerateRequest,
  onMessage?: (m: gatewayV1.GenerateResponse, received: number) => Promise<void> | void,
): Promise<CollectedGeneration> {
  const ids: number[] = [];
  let text = '';
  let finish = gatewayV1.FinishReason.FINISH_REASON_UNSPECIFIED;
  let messages = 0;
  for await (const m of callServerStream(client.generate.bind(client), request, { timeoutMs: 60_000 })) {
    ids.push(...m.tokenIds);
    text += m.text;
    messages++;
    if (m.finishReason !== gatewayV1.FinishReason.FINISH_REASON_UNSPECIFIED) finish = m.finishReason;
    await onMessage?.(m, ids.length);
  }
  return { ids, text, finish, messages };
}
