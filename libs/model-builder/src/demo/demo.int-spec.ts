// `ibllm models demo`'s generator: official-format random checkpoints written by this project
// (no golden files), validated by the strict loaders, built into a full model repository.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  openTorchCheckpoint,
  readFaissIndex,
  toFloat32,
  validateStateDict,
  viewAs,
} from '@imagebind-llm/checkpoint';
import { LlamaTokenizer, parseSentencePieceModel, PieceType } from '@imagebind-llm/tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEncoderRepository } from '../encoders.builder';
import { imageBindKeys } from '../imagebind';
import { buildLanguageRepository } from '../repository.builder';
import { writeDemoCheckpoints, type DemoCheckpoints } from './demo-checkpoints';
import { encodeFaissFlatIndex } from './faiss-index.writer';
import { writeSyntheticImageBindCheckpoint } from './imagebind-checkpoint.writer';
import { encodeSentencePieceModel } from './sentencepiece-model.writer';

const dir = mkdtempSync(join(tmpdir(), 'demo-ckpt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let demo: DemoCheckpoints;
beforeAll(async () => {
  demo = await writeDemoCheckpoints(join(dir, 'ckpt'), { seed: 3 });
});

const ENGLISH = [
  'Describe the image in detail.',
  'Hello, world! The quick brown fox jumps over the lazy dog.',
  'naïve café — 😀\n\ttabs,  two spaces and a trailing space ',
  '  leading spaces',
  '### Response:',
];

describe('writeSyntheticImageBindCheckpoint', () => {
  it('writes exactly the keys of the official strict load, with sensible buffers', async () => {
    const ckpt = await openTorchCheckpoint(demo.imagebind);
    try {
      expect(ckpt.root).toBeInstanceOf(Map);
      const entries = ckpt.stateDict();
      expect(() => validateStateDict(entries, imageBindKeys(demo.config))).not.toThrow();
      expect(entries.size).toBe(imageBindKeys(demo.config).size);
      for (const [key, entry] of entries) {
        expect(entry.dtype, key).toBe(key.endsWith('num_batches_tracked') ? 'int64' : 'float32');
      }
      const values = async (key: string): Promise<Float32Array> => {
        const entry = entries.get(key);
        if (entry === undefined) throw new Error(`missing ${key}`);
        return toFloat32(await entry.read());
      };

      const mask = await values('modality_preprocessors.text.mask');
      for (let i = 0; i < 77; i++) {
        for (let j = 0; j < 77; j++) expect(mask[i * 77 + j]).toBe(j > i ? -Infinity : 0);
      }
      expect((await values('modality_postprocessors.text.1.log_logit_scale'))[0]).toBeCloseTo(
        Math.log(1 / 0.07),
        5,
      );
      expect((await values('modality_postprocessors.audio.1.log_logit_scale'))[0]).toBeCloseTo(
        Math.log(20),
        5,
      );
      expect((await values('modality_postprocessors.point.1.log_logit_scale'))[0]).toBe(0);

      const bn = 'point_trunk.point_encoder.encoder.first_conv.1';
      const variance = await values(`${bn}.running_var`);
      expect(Math.min(...variance)).toBeGreaterThan(0.1);
      expect(Math.max(...(await values(`${bn}.running_mean`)).map(Math.abs))).toBeLessThan(0.5);
      const counter = entries.get(`${bn}.num_batches_tracked`);
      expect(counter).toBeDefined();
      const raw = await counter!.read();
      expect(viewAs(raw.data, BigInt64Array)[0]).toBeGreaterThan(0n);

      const norm = await values('modality_trunks.vision.blocks.0.norm_1.weight');
      for (const v of norm) expect(Math.abs(v - 1)).toBeLessThan(0.25);
      const proj = await values('modality_trunks.vision.blocks.0.attn.in_proj_weight');
      expect(proj.every(Number.isFinite)).toBe(true);
      expect(proj.some((v) => v !== 0)).toBe(true);
    } finally {
      await ckpt.close();
    }
  });

  it('is reproducible from its seed', async () => {
    // Same file name: the zip's top folder is the file's stem.
    const a = join(dir, 'a', 'imagebind.pth');
    const b = join(dir, 'b', 'imagebind.pth');
    const c = join(dir, 'c', 'imagebind.pth');
    await writeSyntheticImageBindCheckpoint(a, { config: demo.config, seed: 11 });
    await writeSyntheticImageBindCheckpoint(b, { config: demo.config, seed: 11 });
    await writeSyntheticImageBindCheckpoint(c, { config: demo.config, seed: 12 });
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    expect(readFileSync(a).equals(readFileSync(c))).toBe(false);
  });
});

describe('writeSentencePieceModel', () => {
  it('writes a LLaMA-layout BPE model the strict parser and LlamaTokenizer accept', () => {
    const model = parseSentencePieceModel(readFileSync(demo.tokenizer), demo.tokenizer);
    expect(model.pieces).toHaveLength(512);
    expect(model.trainerSpec).toMatchObject({
      modelType: 2,
      vocabSize: 512,
      byteFallback: true,
      unkId: 0,
      bosId: 1,
      eosId: 2,
      padId: -1,
    });
    expect(model.normalizerSpec).toMatchObject({
      name: 'identity',
      precompiledCharsmapBytes: 0,
      addDummyPrefix: true,
      removeExtraWhitespaces: false,
      escapeWhitespaces: true,
    });
    expect(model.pieces.slice(0, 3).map((p) => [p.piece, p.type])).toEqual([
      ['<unk>', PieceType.Unknown],
      ['<s>', PieceType.Control],
      ['</s>', PieceType.Control],
    ]);
    expect(model.pieces[3]).toMatchObject({ piece: '<0x00>', type: PieceType.Byte });
    expect(model.pieces[13]).toMatchObject({ piece: '<0x0A>', type: PieceType.Byte });
    expect(model.pieces[258]).toMatchObject({ piece: '<0xFF>', type: PieceType.Byte });
    const normal = model.pieces.slice(259);
    expect(normal.every((p) => p.type === PieceType.Normal)).toBe(true);
    for (let i = 1; i < normal.length; i++) expect(normal[i]!.score).toBeLessThan(normal[i - 1]!.score);
    expect(normal.map((p) => p.piece)).toContain('\u2581');
  });

  it('round-trips English and non-ASCII text, merging common words', () => {
    const tok = LlamaTokenizer.fromFile(demo.tokenizer);
    expect(tok.vocabSize).toBe(512);
    expect([tok.unkId, tok.bosId, tok.eosId, tok.padId]).toEqual([0, 1, 2, -1]);
    for (const text of ENGLISH) expect(tok.decode(tok.encode(text, { bos: true, eos: true }))).toBe(text);
    expect(tok.encode('\n')).toContain(13);
    const sentence = 'Describe the image in detail.';
    expect(tok.encode(sentence).length).toBeLessThan(sentence.length / 2);
    expect(tok.encode(' the').map((id) => tok.idToPiece(id))).toContain('\u2581the');
  });

  it('writes exactly the requested number of pieces, past what the corpus gives', () => {
    for (const vocabSize of [260, 300, 2000]) {
      const { bytes, summary } = encodeSentencePieceModel({ vocabSize });
      expect(summary.vocabSize).toBe(vocabSize);
      const tok = LlamaTokenizer.fromBuffer(bytes);
      expect(tok.vocabSize).toBe(vocabSize);
      for (const text of ENGLISH) expect(tok.decode(tok.encode(text))).toBe(text);
    }
    expect(() => encodeSentencePieceModel({ vocabSize: 259 })).toThrow(/above 259/);
  });
});

describe('writeFaissFlatIndex', () => {
  it('writes unit vectors the faiss reader accepts', async () => {
    const index = await readFaissIndex(demo.knn);
    expect(index).toMatchObject({
      fourcc: 'IxFI',
      metric: 'inner_product',
      d: 1024,
      ntotal: 1024,
      isTrained: true,
    });
    for (let r = 0; r < index.ntotal; r += 97) {
      let sq = 0;
      for (let i = 0; i < index.d; i++) sq += index.vectors[r * index.d + i]! ** 2;
      expect(Math.sqrt(sq)).toBeCloseTo(1, 5);
    }
  });

  it('writes the L2 kind and rejects ragged input', async () => {
    const path = join(dir, 'l2.index');
    const vectors = Float32Array.from([1, 2, 3, 4, 5, 6]);
    writeFileSync(path, encodeFaissFlatIndex(vectors, 3, 'IxF2'));
    const index = await readFaissIndex(path);
    expect(index).toMatchObject({ type: 'IndexFlatL2', d: 3, ntotal: 2 });
    expect([...index.vectors]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => encodeFaissFlatIndex(vectors, 4)).toThrow(/whole number/);
  });
});

describe('writeDemoCheckpoints', () => {
  it('builds a complete model repository whose tokenizer matches the decoder', async () => {
    expect(existsSync(join(demo.dir, 'imagebind_config.json'))).toBe(true);
    const repo = join(dir, 'repo');
    const encoders = await buildEncoderRepository({
      imagebind: demo.imagebind,
      imagebindConfig: demo.imagebindConfig,
      out: repo,
    });
    const language = await buildLanguageRepository({
      adapter: demo.adapter,
      llamaDir: demo.llamaDir,
      llamaType: demo.llamaType,
      knn: demo.knn,
      out: repo,
    });
    const components = [...encoders, ...language.components].map((c) => c.component).sort();
    expect(components).toEqual([
      'bind',
      'imagebind-audio',
      'imagebind-point',
      'imagebind-text',
      'imagebind-vision',
      'knn-cache',
      'llama-decoder',
      'tokenizer',
    ]);
    for (const c of components) expect(existsSync(join(repo, c, '1', 'model.json')), c).toBe(true);
    expect(language.llama).toMatchObject({ dim: 64, nLayers: 2, nHeads: 4, vocabSize: 512 });
    const tok = LlamaTokenizer.fromFile(join(repo, 'tokenizer', '1', 'tokenizer.model'));
    expect(tok.vocabSize).toBe(language.llama.vocabSize);
    const prompt = 'Below is an instruction that describes a task.';
    expect(tok.decode(tok.encode(prompt))).toBe(prompt);
  }, 120_000);
});
