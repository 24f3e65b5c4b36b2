import { parseEnv } from '@imagebind-llm/config';
import { describe, expect, it } from 'vitest';
import { retrieverEnvSchema } from './retriever-env.schema';

const parse = (source: Record<string, string>): ReturnType<typeof parseEnv<typeof retrieverEnvSchema>> =>
  parseEnv('retriever', retrieverEnvSchema, source);

describe('retriever env: disk-resident collections', () => {
  it('defaults to 1 000 000 rows and 128 re-scored candidates', () => {
    const env = parse({});
    expect(env.RETRIEVER_RESIDENT_BELOW).toBe(1_000_000);
    expect(env.RETRIEVER_RESCORE_CANDIDATES).toBe(128);
  });

  it('takes an integer or Infinity (always resident) and refuses anything else', () => {
    expect(parse({ RETRIEVER_RESIDENT_BELOW: '0' }).RETRIEVER_RESIDENT_BELOW).toBe(0);
    expect(parse({ RETRIEVER_RESIDENT_BELOW: '250000' }).RETRIEVER_RESIDENT_BELOW).toBe(250_000);
    expect(parse({ RETRIEVER_RESIDENT_BELOW: 'Infinity' }).RETRIEVER_RESIDENT_BELOW).toBe(
      Number.POSITIVE_INFINITY,
    );
    for (const bad of ['-1', '1.5', 'lots']) {
      expect(() => parse({ RETRIEVER_RESIDENT_BELOW: bad })).toThrow(/RETRIEVER_RESIDENT_BELOW/);
    }
    expect(() => parse({ RETRIEVER_RESCORE_CANDIDATES: '0' })).toThrow(/RETRIEVER_RESCORE_CANDIDATES/);
  });
});
