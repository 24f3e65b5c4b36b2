import {
  hostTensor,
  type DecoderShape,
  type HostTensor,
  type InferenceSessionPort,
} from '@imagebind-llm/inference';
import { strictFake } from '@imagebind-llm/testing';
import type { LlamaTokenizer } from '@imagebind-llm/tokenizer';
import type { DecoderModel } from '../decoder-runtime';

/** A small decoder shape for fakes: 2 layers of width 3, a 100-position context. */
export const FAKE_SHAPE: DecoderShape = {
  nLayers: 2,
  nHeads: 1,
  headDim: 2,
  dim: 3,
  vocabSize: 32_000,
  maxSeqLen: 100,
  eosId: 2,
};

/** Visual graph stand-in: every offset is the sum of v, so a test can see which v went in. */
export class FakeVisualSession implements InferenceSessionPort {
  readonly inputNames = ['visual_query'];
  readonly outputNames = ['layer_offsets'];
  readonly seen: Float32Array[] = [];
  released = false;

  constructor(private readonly shape: DecoderShape = FAKE_SHAPE) {}

  // eslint-disable-next-line @typescript-eslint/require-await -- the port is async; the fake is not
  async run(feeds: Readonly<Record<string, HostTensor>>): Promise<Record<string, HostTensor>> {
    const v = feeds['visual_query']!.data as Float32Array;
    this.seen.push(v.slice());
    const sum = v.reduce((a, b) => a + b, 0);
    const { nLayers, dim } = this.shape;
    return {
      layer_offsets: hostTensor('float32', [1, nLayers, dim], new Float32Array(nLayers * dim).fill(sum)),
    };
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- the port is async; the fake is not
  async release(): Promise<void> {
    this.released = true;
  }
}

/**
 * A DecoderModel for DecoderRuntime.create with a fake engine: the decoder session is never run
 * (the engine replaces it), the visual session is FakeVisualSession, and the tokenizer is the one
 * given (a strict fake that refuses every use when none is).
 */
export function fakeDecoderModel(
  options: { tokenizer?: LlamaTokenizer; shape?: DecoderShape } = {},
): DecoderModel & { visual: FakeVisualSession } {
  const shape = options.shape ?? FAKE_SHAPE;
  return {
    decoder: strictFake<InferenceSessionPort>('decoder session', { release: () => Promise.resolve() }),
    visual: new FakeVisualSession(shape),
    tokenizer: options.tokenizer ?? strictFake<LlamaTokenizer>('tokenizer', {}),
    shape,
    bosId: 1,
    info: { name: 'llama-decoder', version: '1', sourceSha256: 'ab'.repeat(32), executionProvider: 'cpu' },
  };
}
