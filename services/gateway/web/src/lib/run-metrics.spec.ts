import { describe, expect, it } from 'vitest';
import { StreamTimings } from './run-metrics';

describe('StreamTimings', () => {
  it('measures time to first token and the rate between the first and the last token', () => {
    const t = new StreamTimings(1000);
    expect(t.token(1250)).toEqual({ ttftClientMs: 250, tokens: 1 });
    expect(t.token(1300)).toEqual({ ttftClientMs: 250, tokens: 2 });
    expect(t.token(1450)).toEqual({ ttftClientMs: 250, tokens: 3 });
    // 2 intervals over 200 ms = 10 tokens/s; the first token's wait is not part of the rate.
    expect(t.figures(1500)).toEqual({
      latencyMs: 500,
      tokens: 3,
      ttftClientMs: 250,
      clientTokensPerSecond: 10,
    });
  });

  it('has no rate for one token and no first-token time when stopped before any', () => {
    const none = new StreamTimings(0);
    expect(none.figures(80)).toEqual({ latencyMs: 80, tokens: 0 });
    const one = new StreamTimings(0);
    one.token(30);
    expect(one.figures(40)).toEqual({ latencyMs: 40, tokens: 1, ttftClientMs: 30 });
  });

  it("prefers the server's token count and adds its figures and the finish reason", () => {
    const t = new StreamTimings(0);
    t.token(10);
    t.token(20);
    t.usage = { promptTokens: 7, completionTokens: 5, seed: 42, timeToFirstTokenMs: 8, tokensPerSecond: 99 };
    t.finish = 'length';
    expect(t.figures(30)).toEqual({
      latencyMs: 30,
      tokens: 5,
      ttftClientMs: 10,
      clientTokensPerSecond: 100,
      ttftServerMs: 8,
      serverTokensPerSecond: 99,
      seed: 42,
      promptTokens: 7,
      finish: 'length',
    });
  });
});
