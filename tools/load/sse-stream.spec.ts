import { describe, expect, it } from 'vitest';
import { completionTokens, parseSseEvents, summarizeChatStream, tokensPerSecond } from './sse-stream';

/** One chunk as the gateway writes it (services/gateway/src/rest/openai-format.ts, sseEvent). */
function chunk(delta: object, finish: string | null = null, extra: object = {}): string {
  const body = {
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'imagebind-llm',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...extra,
  };
  return `data: ${JSON.stringify(body)}\n\n`;
}

const usageChunk = `data: ${JSON.stringify({
  id: 'chatcmpl-1',
  object: 'chat.completion.chunk',
  created: 1,
  model: 'imagebind-llm',
  choices: [],
  usage: {
    prompt_tokens: 40,
    completion_tokens: 3,
    total_tokens: 43,
    imagebind: { seed: 7, time_to_first_token_ms: 123.5, tokens_per_second: 41.25 },
  },
})}\n\n`;

describe('parseSseEvents', () => {
  it('joins multi-line data, skips comments and reads event types, whatever the line endings', () => {
    const body = ': keep-alive\r\ndata: a\r\ndata:b\r\n\r\nevent: ping\rdata: c\r\rdata: d\n\n';
    expect(parseSseEvents(body)).toEqual([
      { event: 'message', data: 'a\nb' },
      { event: 'ping', data: 'c' },
      { event: 'message', data: 'd' },
    ]);
  });

  it('drops an event the body cut off before its blank line', () => {
    expect(parseSseEvents('data: whole\n\ndata: cut')).toEqual([{ event: 'message', data: 'whole' }]);
  });
});

describe('summarizeChatStream', () => {
  it('reads text, finish reason and usage of a complete stream', () => {
    const body =
      chunk({ role: 'assistant', content: '' }) +
      chunk({ content: 'A girl' }) +
      chunk({ content: ' sings' }) +
      chunk({ content: '.' }) +
      chunk({}, 'stop') +
      usageChunk +
      'data: [DONE]\n\n';
    const summary = summarizeChatStream(body);
    expect(summary).toEqual({
      text: 'A girl sings.',
      contentChunks: 3,
      finishReason: 'stop',
      usage: { promptTokens: 40, completionTokens: 3, serverTtftMs: 123.5, serverTokensPerSecond: 41.25 },
      done: true,
      error: null,
    });
    expect(completionTokens(summary)).toBe(3);
  });

  it('counts content chunks when no usage chunk was asked for', () => {
    const body = chunk({ content: 'a' }) + chunk({ content: 'b' }) + chunk({}, 'length') + 'data: [DONE]\n\n';
    const summary = summarizeChatStream(body);
    expect(summary.usage).toBeNull();
    expect(summary.finishReason).toBe('length');
    expect(completionTokens(summary)).toBe(2);
  });

  it('reports an error event sent after streaming started, and ignores what follows it', () => {
    const error = {
      error: { message: 'the decoder went away', type: 'server_error', param: null, code: 'INTERNAL' },
    };
    const body = chunk({ content: 'a' }) + `data: ${JSON.stringify(error)}\n\n` + 'data: [DONE]\n\n';
    const summary = summarizeChatStream(body);
    expect(summary.error).toBe('INTERNAL: the decoder went away');
    expect(summary.done).toBe(false);
    expect(summary.text).toBe('a');
  });

  it('notices a stream cut before [DONE] and unreadable data', () => {
    expect(summarizeChatStream(chunk({ content: 'a' })).done).toBe(false);
    expect(summarizeChatStream('data: {not json\n\n').error).toMatch(/^unreadable SSE data/);
    expect(summarizeChatStream('data: [1, 2]\n\n').error).toMatch(/not a JSON object/);
  });
});

describe('tokensPerSecond', () => {
  it('counts the tokens after the first over the time after the first', () => {
    expect(tokensPerSecond(11, 500)).toBe(20);
  });

  it('is undefined when the rate cannot be told', () => {
    expect(tokensPerSecond(1, 500)).toBeUndefined();
    expect(tokensPerSecond(10, 0)).toBeUndefined();
    expect(tokensPerSecond(Number.NaN, 100)).toBeUndefined();
  });
});
