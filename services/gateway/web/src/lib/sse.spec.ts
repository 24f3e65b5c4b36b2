import { describe, expect, it } from 'vitest';
import { interpretChatEvent } from './chat-stream';
import { SseParser } from './sse';

describe('SseParser', () => {
  it('returns the data of complete events only', () => {
    const p = new SseParser();
    expect(p.push('data: {"a":1}\n\ndata: {"b"')).toEqual(['{"a":1}']);
    expect(p.push(':2}\n')).toEqual([]);
    expect(p.push('\n')).toEqual(['{"b":2}']);
  });

  it('reads events split at every possible byte', () => {
    const stream = 'data: one\n\n: a comment\ndata: two\r\n\r\ndata:three\r\rdata: [DONE]\n\n';
    for (let cut = 0; cut <= stream.length; cut++) {
      const p = new SseParser();
      const events = [...p.push(stream.slice(0, cut)), ...p.push(stream.slice(cut))];
      expect(events, `cut at ${cut}`).toEqual(['one', 'two', 'three', '[DONE]']);
    }
  });

  it('feeds one character at a time', () => {
    const stream = 'data: a\r\n\r\ndata: b\n\n';
    const p = new SseParser();
    const events = [...stream].flatMap((c) => p.push(c));
    expect(events).toEqual(['a', 'b']);
  });

  it('joins multi-line data, ignores other fields and comments', () => {
    const p = new SseParser();
    expect(p.push('event: x\nid: 3\ndata: line 1\ndata: line 2\nretry: 10\n\n')).toEqual(['line 1\nline 2']);
    expect(p.push(': keep-alive\n\n')).toEqual([]);
    expect(p.push('data\n\n')).toEqual(['']);
  });

  it('keeps only one leading space of a value', () => {
    const p = new SseParser();
    expect(p.push('data:  two spaces\n\n')).toEqual([' two spaces']);
  });
});

describe('interpretChatEvent', () => {
  const chunk = (delta: object, finish: string | null = null): string =>
    JSON.stringify({
      id: 'chatcmpl-1',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      usage: null,
    });

  it('turns content deltas into text and skips the empty role chunk', () => {
    expect(interpretChatEvent(chunk({ role: 'assistant', content: '' }))).toEqual([]);
    expect(interpretChatEvent(chunk({ content: 'Hello' }))).toEqual([{ kind: 'delta', text: 'Hello' }]);
  });

  it('reports the finish reason and the usage with the imagebind figures', () => {
    expect(interpretChatEvent(chunk({}, 'length'))).toEqual([{ kind: 'finish', reason: 'length' }]);
    const usage = JSON.stringify({
      choices: [],
      usage: {
        prompt_tokens: 40,
        completion_tokens: 12,
        total_tokens: 52,
        imagebind: { seed: 7, time_to_first_token_ms: 35.5, tokens_per_second: 290 },
      },
    });
    expect(interpretChatEvent(usage)).toEqual([
      {
        kind: 'usage',
        usage: {
          promptTokens: 40,
          completionTokens: 12,
          seed: 7,
          timeToFirstTokenMs: 35.5,
          tokensPerSecond: 290,
        },
      },
    ]);
  });

  it('recognises [DONE], error events and garbage', () => {
    expect(interpretChatEvent('[DONE]')).toEqual([{ kind: 'done' }]);
    expect(
      interpretChatEvent(
        JSON.stringify({ error: { message: 'decoder failed', type: 'server_error', param: null } }),
      ),
    ).toEqual([{ kind: 'error', message: 'decoder failed', param: null }]);
    expect(interpretChatEvent(JSON.stringify({ error: {} }))[0]).toMatchObject({ kind: 'error' });
    expect(interpretChatEvent('{not json')[0]).toMatchObject({ kind: 'error' });
    expect(interpretChatEvent('42')).toEqual([]);
  });
});
