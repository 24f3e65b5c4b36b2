// The decoder's host graph (model.host.onnx): the device graph fed the cache windows it would slice,
// written beside it (over the same weights file when the weights are external data), chosen for a
// session that keeps its KV cache in host memory, and computing exactly what the device graph
// computes there. The float32-KV repository is built with external data, the float16 one inline.
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createOrtSession,
  GenerationEngine,
  isStateful,
  resolveComponent,
  type DecoderShape,
  type GenerationResult,
  type InferenceSessionPort,
} from '@imagebind-llm/inference';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLanguageRepository } from './repository.builder';
import { writeSyntheticLanguageCheckpoints } from './synthetic-checkpoints';

const dir = mkdtempSync(join(tmpdir(), 'decoder-host-graph-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KV_DTYPES = ['float32', 'float16'] as const;
const repos = new Map<string, string>();

beforeAll(async () => {
  const written = await writeSyntheticLanguageCheckpoints(join(dir, 'ckpt'), {
    dim: 64,
    nLayers: 2,
    nHeads: 4,
    multipleOf: 32,
    vocabSize: 256,
    loraRank: 4,
    bindHidden: 64,
    seed: 11,
  });
  copyFileSync(goldenPath('llama', 'tokenizer.model'), join(written.llamaDir, 'tokenizer.model'));
  for (const kvDtype of KV_DTYPES) {
    const out = join(dir, `repo-${kvDtype}`);
    await buildLanguageRepository({
      adapter: written.adapter,
      llamaDir: written.llamaDir,
      llamaType: written.llamaType,
      out,
      kvDtype,
      externalData: kvDtype === 'float32' ? 'always' : 'auto',
    });
    repos.set(kvDtype, out);
  }
}, 120_000);

function shapeOf(repo: string): DecoderShape {
  const cfg = resolveComponent(repo, 'llama-decoder').json.config as Record<string, number>;
  return {
    nLayers: cfg['nLayers']!,
    nHeads: cfg['nHeads']!,
    headDim: cfg['headDim']!,
    dim: cfg['dim']!,
    vocabSize: cfg['vocabSize']!,
    maxSeqLen: cfg['maxSeqLen']!,
    eosId: 2,
    kvDtype: cfg['kvDtype'] as unknown as DecoderShape['kvDtype'],
  };
}

/** Five requests of different lengths and offsets: four prefill together, one joins later. */
async function generateAll(session: InferenceSessionPort, shape: DecoderShape): Promise<GenerationResult[]> {
  const engine = new GenerationEngine(session, shape, { maxBatch: 4 });
  const request = (i: number) => {
    const offsets = new Float32Array(shape.nLayers * shape.dim);
    for (let k = 0; k < offsets.length; k++) offsets[k] = Math.sin(k * 0.37 + i) * 0.05;
    return {
      promptIds: [1, ...Array.from({ length: 3 + 5 * i }, (_, k) => 3 + ((i * 41 + k * 13) % 250))],
      layerOffsets: offsets,
      sampling: { temperature: 0, topP: 0.75, seed: 0n },
      maxNewTokens: 10 + 3 * i,
      ignoreEos: true,
      wantPrefillLogits: true,
    };
  };
  const first = [0, 1, 2, 3].map(async (i) => engine.generate(request(i)));
  const late = (async () => {
    await first[1];
    return engine.generate(request(4));
  })();
  return Promise.all([...first, late]);
}

describe('the decoder host graph (model.host.onnx)', () => {
  it.each(KV_DTYPES)(
    'is written beside model.onnx, without the past inputs or their Slice (KV %s)',
    async (kvDtype) => {
      const component = resolveComponent(repos.get(kvDtype)!, 'llama-decoder');
      expect(component.json.files['hostDecoder']).toBe('model.host.onnx');
      const files = readdirSync(component.dir).sort();
      const size = (file: string): number => statSync(join(component.dir, file)).size;
      if (kvDtype === 'float32') {
        // external data: one weights file, both graphs point at it and are only their nodes
        expect(files.filter((f) => f.startsWith('model') && f.endsWith('.data'))).toEqual([
          'model.onnx.data',
        ]);
        for (const graph of ['model.onnx', 'model.host.onnx']) {
          expect(size(graph)).toBeLessThan(size('model.onnx.data') / 4);
          expect(readFileSync(join(component.dir, graph)).includes('model.onnx.data')).toBe(true);
        }
      } else {
        // inline: each graph holds the weights (the host graph's are the same bytes)
        expect(files.filter((f) => f.endsWith('.data'))).toEqual([]);
        expect(size('model.host.onnx')).toBeGreaterThan(0.9 * size('model.onnx'));
        expect(size('model.host.onnx')).toBeLessThan(size('model.onnx'));
      }
      const host = await createOrtSession(component.file('hostDecoder'));
      const device = await createOrtSession(component.file('decoder'));
      try {
        expect(host.inputNames).toContain('window_key_1');
        expect(host.inputNames).toContain('window_value_1');
        expect(host.inputNames.filter((n) => n.startsWith('past_key'))).toEqual([]);
        expect(device.inputNames).toContain('past_key_1');
        expect(device.inputNames.filter((n) => n.startsWith('window_'))).toEqual([]);
        expect(host.outputNames).toEqual(device.outputNames);
        const specs = component.json.graphs!['hostDecoder']!.inputs.map((i) => i.name);
        expect([...specs].sort()).toEqual([...host.inputNames].sort());
      } finally {
        await Promise.all([host.release(), device.release()]);
      }
      // the two Slices per layer that cut the windows out are left out (NodeProto op_type "Slice")
      const slices = (role: string): number =>
        readFileSync(component.file(role)).toString('latin1').split('\u0022\u0005Slice').length - 1;
      expect(slices('hostDecoder')).toBeGreaterThan(0);
      expect(slices('decoder') - slices('hostDecoder')).toBe(2 * shapeOf(repos.get(kvDtype)!).nLayers);
    },
  );

  it.each(KV_DTYPES)(
    'runs each norm, residual add and RoPE as one fused node, with no Identity copies (KV %s)',
    (kvDtype) => {
      const repo = repos.get(kvDtype)!;
      const component = resolveComponent(repo, 'llama-decoder');
      const layers = shapeOf(repo).nLayers;
      // NodeProto op_type: field 4, length-delimited (0x22), then its one-byte length
      const count = (role: string, opType: string): number =>
        readFileSync(component.file(role))
          .toString('latin1')
          .split(`\u0022${String.fromCharCode(opType.length)}${opType}`).length - 1;
      for (const role of ['decoder', 'hostDecoder']) {
        // the first attention norm has nothing to add yet; every later norm adds the branch
        // before it (two per layer: after the attention, after the FFN, the last before the
        // final norm)
        expect(count(role, 'SimplifiedLayerNormalization')).toBe(1);
        expect(count(role, 'SkipSimplifiedLayerNormalization')).toBe(2 * layers);
        expect(count(role, 'RotaryEmbedding')).toBe(2 * layers);
        for (const unfused of ['ReduceMean', 'Reciprocal', 'Sqrt'])
          expect(count(role, unfused), unfused).toBe(0);
        // outputs are named where they are made: at most the logits' rename is an Identity
        expect(count(role, 'Identity')).toBeLessThanOrEqual(1);
      }
    },
  );

  it.each(KV_DTYPES)(
    'gives the tokens and prefill logits the device graph gives on host state, bit for bit (KV %s)',
    async (kvDtype) => {
      const repo = repos.get(kvDtype)!;
      const component = resolveComponent(repo, 'llama-decoder');
      const shape = shapeOf(repo);
      // model.onnx on host state: fed each row's window as past_*, it slices it once more
      const device = await createOrtSession(component.file('decoder'), { thread: 'worker' });
      // what a CPU decoder loads: the worker session picks the host graph
      const host = await createOrtSession(component.file('decoder'), {
        thread: 'worker',
        hostStateModel: component.file('hostDecoder'),
        stateAllocModel: component.file('state'),
      });
      try {
        expect(host.inputNames).toContain('window_key_0');
        const [viaSlice, viaWindow] = [await generateAll(device, shape), await generateAll(host, shape)];
        viaWindow.forEach((r, i) => {
          expect(r.tokenIds, `row ${i}`).toEqual(viaSlice[i]!.tokenIds);
          expect(r.tokenIds.length).toBe(10 + 3 * i);
          expect(
            Buffer.from(r.prefillLogits!.buffer).equals(Buffer.from(viaSlice[i]!.prefillLogits!.buffer)),
          ).toBe(true);
        });
      } finally {
        await Promise.all([device.release(), host.release()]);
      }
    },
    120_000,
  );
});

// The step graph (model.step.onnx): model.onnx with each layer's attention as one
// GroupQueryAttention that writes the slot cache in place, for a device session's decode steps.
describe('the decoder step graph (model.step.onnx)', () => {
  /** Op types of a graph file's nodes, counted (NodeProto op_type: field 4, then its length). */
  const count = (file: string, opType: string): number =>
    readFileSync(file)
      .toString('latin1')
      .split(`\u0022${String.fromCharCode(opType.length)}${opType}`).length - 1;

  it.each(KV_DTYPES)(
    'is written beside model.onnx: one fused attention per layer, no mask, scatter or window (KV %s)',
    async (kvDtype) => {
      const repo = repos.get(kvDtype)!;
      const component = resolveComponent(repo, 'llama-decoder');
      const layers = shapeOf(repo).nLayers;
      expect(component.json.files['stepDecoder']).toBe('model.step.onnx');
      const step = component.file('stepDecoder');
      if (kvDtype === 'float32') {
        // external data: it points at model.onnx's weights file and is only its nodes
        expect(statSync(step).size).toBeLessThan(statSync(join(component.dir, 'model.onnx.data')).size / 4);
        expect(readFileSync(step).includes('model.onnx.data')).toBe(true);
      }
      expect(count(step, 'GroupQueryAttention')).toBe(layers);
      for (const gone of ['RotaryEmbedding', 'ScatterND', 'Softmax', 'Slice', 'Where', 'Concat'])
        expect(count(step, gone), gone).toBe(0);
      expect(count(step, 'SkipSimplifiedLayerNormalization')).toBe(2 * layers);
      const session = await createOrtSession(step);
      try {
        const specs = component.json.graphs!['stepDecoder']!;
        expect([...session.inputNames].sort()).toEqual(specs.inputs.map((i) => i.name).sort());
        expect([...session.outputNames].sort()).toEqual(specs.outputs.map((o) => o.name).sort());
        for (const general of [
          'position_ids',
          'past_lengths',
          'new_lengths',
          'kv_write_index',
          'cache_key_0',
        ])
          expect(session.inputNames, general).not.toContain(general);
        expect(session.outputNames).not.toContain('new_key_0');
      } finally {
        await session.release();
      }
    },
  );

  // Rows that prefill together, leave at different steps and a row that joins a freed slot: the
  // device's decode steps through the step graph give the tokens the CPU's host graph gives.
  it.each(KV_DTYPES)(
    'decodes on the WebGPU provider as the host graph does on the CPU (KV %s)',
    async (kvDtype) => {
      const repo = repos.get(kvDtype)!;
      const component = resolveComponent(repo, 'llama-decoder');
      const shape = shapeOf(repo);
      const files = {
        stateAllocModel: component.file('state'),
        hostStateModel: component.file('hostDecoder'),
      };
      const cpu = await createOrtSession(component.file('decoder'), { thread: 'worker', ...files });
      const gpu = await createOrtSession(component.file('decoder'), {
        thread: 'worker',
        providers: ['webgpu'],
        ...files,
        stepStateModel: component.file('stepDecoder'),
      });
      try {
        const engine = new GenerationEngine(gpu, shape, { maxBatch: 4 });
        expect([engine.stateLocation, engine.stepKind]).toEqual(['device', 'step']);
        const [onCpu, onGpu] = [await generateAll(cpu, shape), await generateAll(gpu, shape)];
        onGpu.forEach((r, i) => {
          expect(r.tokenIds, `row ${i}`).toEqual(onCpu[i]!.tokenIds);
          expect(r.tokenIds.length).toBe(10 + 3 * i);
        });
      } finally {
        await Promise.all([cpu.release(), gpu.release()]);
      }
    },
    120_000,
  );

  it('is an optimisation: a step graph that does not load leaves the session on its main graph', async () => {
    const repo = repos.get('float32')!;
    const component = resolveComponent(repo, 'llama-decoder');
    const shape = shapeOf(repo);
    const broken = join(dir, 'broken.step.onnx');
    writeFileSync(broken, 'not an onnx model');
    const gpu = await createOrtSession(component.file('decoder'), {
      thread: 'worker',
      providers: ['webgpu'],
      stateAllocModel: component.file('state'),
      stepStateModel: broken,
    });
    try {
      expect(isStateful(gpu) && gpu.stepGraph).toBe(false);
      expect(isStateful(gpu) ? gpu.stepGraphError : undefined).toMatch(/\S/);
      const engine = new GenerationEngine(gpu, shape, { maxBatch: 4 });
      expect([engine.stateLocation, engine.stepKind]).toEqual(['device', 'general']);
      const results = await generateAll(gpu, shape);
      results.forEach((r, i) => expect(r.tokenIds.length).toBe(10 + 3 * i));
    } finally {
      await gpu.release();
    }
  }, 120_000);
});
