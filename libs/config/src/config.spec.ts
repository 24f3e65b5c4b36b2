import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  describeEnv,
  embeddedStoreEnv,
  embeddedStoreSettings,
  env,
  envVar,
  parseEnv,
} from './index';

const schema = {
  PORT: envVar(env.port(50051), 'gRPC port'),
  HOST: envVar(env.host('127.0.0.1'), 'bind address'),
  WORKERS: envVar(env.positiveInt(4, 64), 'worker count'),
  DEBUG: envVar(env.boolean(false), 'debug mode'),
  LOG_LEVEL: envVar(env.logLevel(), 'log level'),
  NAME: envVar(env.optionalString(), 'optional name'),
};

describe('parseEnv', () => {
  it('applies defaults when variables are unset or empty', () => {
    const cfg = parseEnv('svc', schema, { PORT: '', HOST: undefined });
    expect(cfg).toEqual({
      PORT: 50051,
      HOST: '127.0.0.1',
      WORKERS: 4,
      DEBUG: false,
      LOG_LEVEL: 'info',
      NAME: undefined,
    });
  });

  it('coerces strings the way operators write them', () => {
    const cfg = parseEnv('svc', schema, {
      PORT: '0',
      WORKERS: '8',
      DEBUG: 'yes',
      LOG_LEVEL: 'debug',
      NAME: ' x ',
    });
    expect(cfg.PORT).toBe(0);
    expect(cfg.WORKERS).toBe(8);
    expect(cfg.DEBUG).toBe(true);
    expect(cfg.LOG_LEVEL).toBe('debug');
    expect(cfg.NAME).toBe('x');
  });

  it('reports every bad variable at once, naming it, its value and what it means', () => {
    let caught: unknown;
    try {
      parseEnv('gateway', schema, { PORT: '70000', WORKERS: '1.5', DEBUG: 'maybe', LOG_LEVEL: 'loud' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const e = caught as ConfigError;
    expect(e.problems).toHaveLength(4);
    expect(e.message.split('\n')).toHaveLength(1);
    expect(e.message).toContain('invalid configuration for gateway');
    expect(e.message).toContain('PORT is "70000": must be 0..65535');
    expect(e.message).toContain('WORKERS is "1.5": must be an integer (worker count)');
    expect(e.message).toContain('DEBUG is "maybe": must be true or false');
    expect(e.message).toContain('LOG_LEVEL is "loud"');
  });

  it('rejects hosts with spaces or schemes', () => {
    expect(() => parseEnv('svc', schema, { HOST: 'http://x' })).toThrow(
      /HOST is "http:\/\/x": must be a host name/,
    );
  });
});

describe('describeEnv', () => {
  it('documents each variable with its default', () => {
    const table = describeEnv(schema);
    expect(table).toContain('| `PORT` | 50051 | gRPC port |');
    expect(table).toContain('| `DEBUG` | false | debug mode |');
  });
});

describe('embeddedStoreEnv', () => {
  it('maps the RETRIEVER_ store variables onto EmbeddedVectorStore options, with their defaults', () => {
    const schema = embeddedStoreEnv();
    expect(embeddedStoreSettings(parseEnv('gateway', schema, {}))).toEqual({
      quantization: 'f32',
      exactBelow: 200_000,
      residentBelow: 1_000_000,
      hnsw: { rescoreCandidates: 128 },
      streamedIndex: 'ivf',
      ivf: { probes: 32, rescoreCandidates: 128 },
    });
    expect(
      embeddedStoreSettings(
        parseEnv('gateway', schema, {
          RETRIEVER_QUANTIZATION: 'i8',
          RETRIEVER_RESIDENT_BELOW: 'Infinity',
          RETRIEVER_RESCORE_CANDIDATES: '256',
          RETRIEVER_SCAN_THREADS: '0',
          RETRIEVER_STREAMED_INDEX: 'hnsw',
          RETRIEVER_IVF_LISTS: '4096',
          RETRIEVER_IVF_PROBES: '64',
        }),
      ),
    ).toMatchObject({
      quantization: 'i8',
      residentBelow: Number.POSITIVE_INFINITY,
      hnsw: { rescoreCandidates: 256 },
      scanThreads: 0,
      streamedIndex: 'hnsw',
      ivf: { lists: 4096, probes: 64, rescoreCandidates: 256 },
    });
    expect(() => parseEnv('gateway', schema, { RETRIEVER_STREAMED_INDEX: 'flat' })).toThrow(
      /RETRIEVER_STREAMED_INDEX.*must be ivf or hnsw/,
    );
    expect(() => parseEnv('gateway', schema, { RETRIEVER_IVF_PROBES: '0' })).toThrow(/RETRIEVER_IVF_PROBES/);
    expect(() => parseEnv('gateway', schema, { RETRIEVER_SCAN_THREADS: '65' })).toThrow(
      /RETRIEVER_SCAN_THREADS.*at most 64/,
    );
    expect(() => parseEnv('gateway', schema, { RETRIEVER_QUANTIZATION: 'i4' })).toThrow(
      /RETRIEVER_QUANTIZATION.*must be f32 or i8/,
    );
  });
});
