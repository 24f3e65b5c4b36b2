// Load on the OpenAI-compatible REST API: `POST /v1/chat/completions` with `stream: true`, an image
// (data URL) and optionally an audio clip, answered as server-sent events.
//
//   k6 run tools/load/chat-sse.ts -e BASE_URL=http://127.0.0.1:8080 -e API_KEY=... \
//     -e IMAGE_PATH=/abs/path/girl.jpg [-e AUDIO_PATH=/abs/path/girl_bgm.wav] [-e PROFILE=load -e RATE=2]
//
// k6/http cannot read a response body as it arrives (k6/experimental/streams offers ReadableStream,
// but no HTTP client hands one out), so the SSE body is parsed once the response is complete:
// - time to first token is approximated by `timings.waiting`, the time to the first response byte.
//   The approximation is close for this gateway: it holds the response headers back until the
//   decoder's first message is there (services/gateway/src/openai.controller.ts), so the first byte
//   leaves together with the first token. The gateway's own figure, measured from request arrival,
//   comes back in the usage chunk and is recorded as ibllm_server_ttft_ms for comparison;
// - tokens per second is (completion tokens - 1) / `timings.receiving`: the first token came with
//   the first byte, the others during the receiving time (from first to last byte). That is the
//   stream time after time-to-first-token less the time spent sending the request body, which
//   would otherwise count a large upload as slow decoding.
import { check } from 'k6';
import http from 'k6/http';
import type { Options } from 'k6/options';
import {
  assertModelReady,
  audioFromEnv,
  bodySnippet,
  completionTokens,
  dataUrl,
  envNumber,
  envString,
  generationMetrics,
  generationOptions,
  imageFromEnv,
  header,
  jsonHeaders,
  logFailure,
  summarizeChatStream,
  target,
  tokensPerSecond,
  type ChatStreamSummary,
} from './lib.ts';

const gateway = target();

const image = imageFromEnv();
const audio = audioFromEnv();

// Built once per VU: the body is the same for every request (the image can be large).
const content: object[] = [
  { type: 'text', text: envString('PROMPT', 'Describe the scene in detail.') },
  { type: 'image_url', image_url: { url: dataUrl(image) } },
];
if (audio !== undefined) {
  content.push({ type: 'input_audio', input_audio: { data: audio.base64, format: audio.format } });
}
const seed = envString('SEED', '');
const body = JSON.stringify({
  model: gateway.model,
  stream: true,
  // The usage chunk before [DONE] carries the exact completion token count and the server's timings.
  stream_options: { include_usage: true },
  max_tokens: envNumber('MAX_TOKENS', 64),
  temperature: envNumber('TEMPERATURE', 0.1),
  top_p: envNumber('TOP_P', 0.75),
  ...(seed === '' ? {} : { seed: Number(seed) }),
  messages: [{ role: 'user', content }],
});

const { ttft, serverTtft, tokenRate, tokens, finishes, errors } = generationMetrics();

export const options: Options = generationOptions('chat_sse', {
  'http_req_failed{name:chat_completions}': [`rate<${envNumber('MAX_ERROR_RATE', 0.01)}`],
});

export function setup(): void {
  assertModelReady(gateway);
}

export default function chatCompletion(): void {
  const res = http.post(`${gateway.baseUrl}/v1/chat/completions`, body, {
    headers: jsonHeaders({ accept: 'text/event-stream' }),
    timeout: gateway.timeout,
    tags: { name: 'chat_completions' },
  });
  const stream: ChatStreamSummary | undefined =
    res.status === 200 && typeof res.body === 'string' ? summarizeChatStream(res.body) : undefined;
  const ok = check(res, {
    'status is 200': (r) => r.status === 200,
    'answered as text/event-stream': (r) => header(r, 'content-type').startsWith('text/event-stream'),
    'no error event': () => stream !== undefined && stream.error === null,
    'stream ended with [DONE]': () => stream?.done === true,
    'finish_reason stop or length': () =>
      stream?.finishReason === 'stop' || stream?.finishReason === 'length',
  });
  errors.add(!ok, { http_status: String(res.status) });
  if (!ok || stream === undefined) {
    const why = stream?.error ?? (res.error !== '' ? res.error : bodySnippet(res.body));
    logFailure(`chat completion failed (HTTP ${res.status})`, why);
    return;
  }

  ttft.add(res.timings.waiting);
  const n = completionTokens(stream);
  tokens.add(n);
  const rate = tokensPerSecond(n, res.timings.receiving);
  if (rate !== undefined) tokenRate.add(rate);
  if (stream.usage?.serverTtftMs !== undefined) serverTtft.add(stream.usage.serverTtftMs);
  finishes.add(1, { reason: stream.finishReason ?? 'none' });
}
