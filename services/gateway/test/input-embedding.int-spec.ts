// Bring your own embedding (issue #17 item 9), checked against what the official code answered:
// for every golden decode case of tiny-a, the case's inputs sent as precomputed embeddings instead
// of media — the golden per-input ImageBind embeddings with the fusion case's weights, and the
// golden fused query q alone (`fused: true`) — give the official 24 greedy tokens, through gRPC and
// REST. The embeddings the gateway's own Embed returns for the demo media, sent back, do too.
// decode/gates0_* was made with every attention.gate of 7B.pth at zero: that case runs on a second
// gateway whose repository is built from such a copy of the adapter.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  openTorchCheckpoint,
  readNpy,
  toFloat32,
  writeTorchCheckpoint,
  type TorchTensorSource,
} from '@imagebind-llm/checkpoint';
import { status, type ServiceError } from '@grpc/grpc-js';
import { audio, embedding, image, ImageBindClient } from '@imagebind-llm/client';
import { callUnary, createClient, float32Tensor } from '@imagebind-llm/grpc-kit';
import { commonV1, gatewayV1 } from '@imagebind-llm/proto';
import {
  collectGenerate,
  goldenBuildArgs,
  goldenDemoInputs,
  goldenDir,
  goldenPath,
  repoRoot,
  startStandaloneGateway,
  type GoldenCase,
  type ServiceProcess,
} from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const { Modality } = commonV1;

interface FusionInput {
  readonly modality: string;
  readonly input: string;
  readonly weight: number;
}
interface FusionCase extends GoldenCase {
  readonly inputs: readonly FusionInput[];
  readonly knn: { enabled: boolean; cache_size?: number; cache_t?: number; cache_weight?: number };
}
interface DecodeCase extends GoldenCase {
  readonly fusion_case: string;
  readonly instruction: string;
  readonly input: string | null;
  readonly max_gen_len: number;
  readonly gates_zero: boolean;
  readonly generated_ids: number[];
  readonly text_stripped: string;
}

const dir = goldenDir();
const cases = (JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { cases: GoldenCase[] }).cases;
const decodeCases = cases.filter((c) => c.kind === 'decode') as DecodeCase[];
const fusionOf = (d: DecodeCase): FusionCase => cases.find((c) => c.id === d.fusion_case) as FusionCase;
const load = (file: string): Float32Array => toFloat32(readNpy(join(dir, file)));

/** The official ImageBind output (after its postprocessor, logit scale included) of a golden input. */
function goldenEmbedding(input: string): Float32Array {
  const c = cases.find((x) => x.kind === 'embedding' && x['input'] === input);
  if (c === undefined) throw new Error(`golden set has no embedding of ${input}`);
  return load(c.outputs['embedding']!.file);
}

const MODALITY: Readonly<Record<string, commonV1.Modality>> = {
  Image: Modality.MODALITY_IMAGE,
  Video: Modality.MODALITY_VIDEO,
  Audio: Modality.MODALITY_AUDIO,
  Text: Modality.MODALITY_TEXT,
  Point: Modality.MODALITY_POINT_CLOUD,
};

function embeddingInput(vector: Float32Array, extra: Partial<gatewayV1.MultimodalInput> = {}, fused = false) {
  return {
    modality: Modality.MODALITY_UNSPECIFIED,
    mediaType: '',
    ...extra,
    source: { $case: 'embedding' as const, value: { vector: float32Tensor(vector, [vector.length]), fused } },
  };
}

/** The fusion case's inputs as golden per-input embeddings, with their modalities and weights. */
function perInputEmbeddings(f: FusionCase): gatewayV1.MultimodalInput[] {
  return f.inputs.map((i) =>
    embeddingInput(goldenEmbedding(i.input), { modality: MODALITY[i.modality]!, weight: i.weight }),
  );
}

/** The golden fused query q of the case, sent alone as `fused: true`. */
function fusedQuery(f: FusionCase): gatewayV1.MultimodalInput[] {
  return [embeddingInput(load(f.outputs['q']!.file), {}, true)];
}

function cacheOf(f: FusionCase): gatewayV1.CacheOptions {
  if (!f.knn.enabled) return { enabled: false };
  return { enabled: true, size: f.knn.cache_size!, temperature: f.knn.cache_t!, weight: f.knn.cache_weight! };
}

function generateRequest(d: DecodeCase, inputs: gatewayV1.MultimodalInput[]): gatewayV1.GenerateRequest {
  return {
    inputs,
    instruction: d.instruction,
    input: d.input ?? '',
    cache: cacheOf(fusionOf(d)),
    sampling: { temperature: 0 },
    stopping: { maxNewTokens: d.max_gen_len },
  };
}

async function tokens(gateway: ServiceProcess, request: gatewayV1.GenerateRequest): Promise<number[]> {
  const client = createClient(gatewayV1.GatewayServiceClient, gateway.grpcAddress);
  try {
    return (await collectGenerate(client, request)).ids;
  } finally {
    client.close();
  }
}

/** A chat completion body, or an error in OpenAI's shape: the fields these tests read. */
interface ChatReply {
  readonly usage?: { readonly completion_tokens: number };
  readonly choices?: { readonly message: { readonly content: string } }[];
  readonly error?: { readonly message: string; readonly type: string; readonly param: string | null };
}

/** Posts a non-streamed chat completion; returns the status and the parsed body. */
async function chat(gateway: ServiceProcess, body: unknown): Promise<{ status: number; json: ChatReply }> {
  const res = await fetch(`${gateway.httpBase}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as ChatReply };
}

function chatBody(d: DecodeCase, parts: unknown[]): unknown {
  const f = fusionOf(d);
  return {
    model: 'imagebind-llm',
    temperature: 0,
    max_tokens: d.max_gen_len,
    messages: [{ role: 'user', content: [{ type: 'text', text: d.instruction }, ...parts] }],
    imagebind: {
      ...(d.input === null ? {} : { input: d.input }),
      cache: f.knn.enabled
        ? { enabled: true, size: f.knn.cache_size, temperature: f.knn.cache_t, weight: f.knn.cache_weight }
        : { enabled: false },
    },
  };
}

/** Writes `out`: the golden adapter checkpoint with every attention.gate tensor zeroed. */
async function zeroGates(out: string): Promise<number> {
  const ckpt = await openTorchCheckpoint(join(dir, '7B.pth'));
  try {
    let count = 0;
    const tensors = new Map<string, TorchTensorSource>();
    for (const [name, entry] of ckpt.stateDict(['model'])) {
      if (!name.endsWith('.attention.gate')) {
        tensors.set(name, entry);
        continue;
      }
      count++;
      const elements = entry.shape.reduce((n, d) => n * d, 1);
      const bytesPer = entry.dtype === 'float16' ? 2 : 4;
      tensors.set(name, {
        dtype: entry.dtype,
        shape: entry.shape,
        data: new Uint8Array(elements * bytesPer),
      });
    }
    await writeTorchCheckpoint(out, { model: tensors }, { archiveName: '7B' });
    return count;
  } finally {
    await ckpt.close();
  }
}

let gateway: ServiceProcess;
let gatesZeroGateway: ServiceProcess;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ibllm-input-embedding-'));
  const adapter = join(work, '7B-gates0.pth');
  expect(await zeroGates(adapter)).toBe(2); // tiny-a: 2 layers, one gate each
  const repo = join(work, 'repo-gates0');
  const args = goldenBuildArgs(repo);
  args[args.indexOf('--adapter') + 1] = adapter;
  const cli = join(repoRoot(), 'tools', 'cli', 'bin', 'ibllm.js');
  const built = spawnSync(process.execPath, [cli, 'models', 'build', ...args], { encoding: 'utf8' });
  expect(built.status, built.stderr).toBe(0);
  [gateway, gatesZeroGateway] = await Promise.all([
    startStandaloneGateway(),
    startStandaloneGateway({ GATEWAY_MODEL_REPO: repo }, 'gateway-gates0'),
  ]);
}, 240_000);

afterAll(async () => {
  await gateway?.proc.stop('SIGTERM');
  await gatesZeroGateway?.proc.stop('SIGTERM');
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

const gatewayFor = (d: DecodeCase): ServiceProcess => (d.gates_zero ? gatesZeroGateway : gateway);

describe('golden decode cases with precomputed embeddings (gRPC)', () => {
  it('covers every decode case of the set', () => {
    expect(decodeCases.length).toBe(4);
    expect(decodeCases.every((d) => d.generated_ids.length === 24)).toBe(true);
  });

  const sent: readonly (readonly [string, (d: DecodeCase) => gatewayV1.MultimodalInput[]])[] = [
    ['the per-input embeddings with their weights give', (d) => perInputEmbeddings(fusionOf(d))],
    ['the fused query q alone (fused: true) gives', (d) => fusedQuery(fusionOf(d))],
  ];
  it.each(sent.flatMap(([what, inputs]) => decodeCases.map((d) => [d.id, what, d, inputs] as const)))(
    '%s: %s the official 24 tokens',
    async (_id, _what, d, inputs) => {
      expect(await tokens(gatewayFor(d), generateRequest(d, inputs(d)))).toEqual(d.generated_ids);
    },
    60_000,
  );

  it('the fused flag matters: q of two inputs is not unit-length, and re-normalised it answers differently', async () => {
    const d = decodeCases.find((x) => x.id === 'decode/image+audio_knn-off')!;
    const q = load(fusionOf(d).outputs['q']!.file);
    // (e_image + e_audio)/(2 + 1e-6) of two nearly orthogonal unit vectors (cosine 0.008): ~0.71
    expect(Math.hypot(...q)).toBeGreaterThan(0.6);
    expect(Math.hypot(...q)).toBeLessThan(0.8);
    const asInput = await tokens(gateway, generateRequest(d, [embeddingInput(q)]));
    expect(asInput).toHaveLength(24);
    expect(asInput).not.toEqual(d.generated_ids);
  });

  it('what Embed returns for the demo media, sent back, answers as the media do (decode/demo_image+audio_knn-on)', async () => {
    const d = decodeCases.find((x) => x.id === 'decode/demo_image+audio_knn-on')!;
    const client = createClient(gatewayV1.GatewayServiceClient, gateway.grpcAddress);
    let embedded: gatewayV1.EmbedResponse;
    try {
      embedded = await callUnary(
        client.embed.bind(client),
        { inputs: goldenDemoInputs(), includeFused: true },
        { timeoutMs: 60_000 },
      );
    } finally {
      client.close();
    }
    expect(embedded.embeddings.map((e) => e.modality)).toEqual([
      Modality.MODALITY_IMAGE,
      Modality.MODALITY_AUDIO,
    ]);
    const echoed = embedded.embeddings.map((e) => ({
      modality: e.modality,
      mediaType: '',
      source: { $case: 'embedding' as const, value: { vector: e.embedding!, fused: false } },
    }));
    expect(await tokens(gateway, generateRequest(d, echoed))).toEqual(d.generated_ids);
    const fused = [
      {
        modality: Modality.MODALITY_UNSPECIFIED,
        mediaType: '',
        source: { $case: 'embedding' as const, value: { vector: embedded.fused!, fused: true } },
      },
    ];
    expect(await tokens(gateway, generateRequest(d, fused))).toEqual(d.generated_ids);
  }, 90_000);
});

describe('the SDK: embed once, ask again from the vectors', () => {
  it('embed() then generate() with embedding(...) gives the official tokens (decode/demo_image+audio_knn-on)', async () => {
    const d = decodeCases.find((x) => x.id === 'decode/demo_image+audio_knn-on')!;
    const client = new ImageBindClient({ addresses: gateway.grpcAddress });
    try {
      const { embeddings, fused } = await client.embed({
        inputs: [image(goldenPath('inputs', 'girl.jpg')), audio(goldenPath('inputs', 'girl_bgm.wav'))],
        includeFused: true,
      });
      const ask = async (inputs: gatewayV1.MultimodalInput[]): Promise<number[]> =>
        (
          await client
            .generate({
              inputs,
              instruction: d.instruction,
              cache: cacheOf(fusionOf(d)),
              sampling: { temperature: 0 },
              maxNewTokens: d.max_gen_len,
            })
            .collect()
        ).tokenIds;
      expect(await ask(embeddings.map((e) => embedding(e.vector, { modality: e.modality })))).toEqual(
        d.generated_ids,
      );
      expect(await ask([embedding(fused!, { fused: true })])).toEqual(d.generated_ids);
    } finally {
      client.close();
    }
  }, 90_000);
});

describe('golden decode cases with input_embedding parts (REST)', () => {
  it.each(decodeCases.map((d) => [d.id, d] as const))(
    '%s: per-input embeddings (numbers) and the fused query (base64) give the official answer',
    async (_id, d) => {
      const f = fusionOf(d);
      const perInput = f.inputs.map((i) => ({
        type: 'input_embedding',
        input_embedding: { embedding: Array.from(goldenEmbedding(i.input)) },
        weight: i.weight,
      }));
      const q = load(f.outputs['q']!.file);
      const fused = {
        type: 'input_embedding',
        input_embedding: {
          embedding: Buffer.from(float32Tensor(q, [q.length]).data).toString('base64'),
          fused: true,
        },
      };
      for (const parts of [perInput, [fused]]) {
        const { status, json } = await chat(gatewayFor(d), chatBody(d, parts));
        expect(status, JSON.stringify(json)).toBe(200);
        expect(json.usage?.completion_tokens).toBe(24);
        expect(json.choices?.[0]?.message.content.trim()).toBe(d.text_stripped);
      }
    },
    60_000,
  );
});

describe('refusals (REST 400 in OpenAI shape, naming the part; gRPC INVALID_ARGUMENT)', () => {
  const goodVector = (): number[] => Array.from(goldenEmbedding('girl'));
  const instruction = { type: 'text', text: 'Describe it.' };
  const bad: { name: string; part: Record<string, unknown>; param: string; says: RegExp }[] = [
    {
      name: 'wrong length',
      part: { type: 'input_embedding', input_embedding: { embedding: [0.1, 0.2, 0.3] } },
      param: 'messages[0].content[1].input_embedding.embedding',
      says: /1024 numbers.*got 3/,
    },
    {
      name: 'a non-number value',
      part: {
        type: 'input_embedding',
        input_embedding: { embedding: goodVector().map((v, i) => (i === 7 ? 'x' : v)) },
      },
      param: 'messages[0].content[1].input_embedding.embedding[7]',
      says: /finite number, got a string/,
    },
    {
      name: 'a value past float32 (1e39)',
      part: {
        type: 'input_embedding',
        input_embedding: { embedding: goodVector().map((v, i) => (i === 3 ? 1e39 : v)) },
      },
      param: 'messages[0].content[1].input_embedding.embedding[3]',
      says: /float32 range/,
    },
    {
      name: 'NaN in base64 float32',
      part: {
        type: 'input_embedding',
        input_embedding: {
          embedding: Buffer.from(
            float32Tensor(
              Float32Array.from(goodVector(), (v, i) => (i === 5 ? NaN : v)),
              [1024],
            ).data,
          ).toString('base64'),
        },
      },
      param: 'messages[0].content[1].input_embedding.embedding[5]',
      says: /NaN/,
    },
    {
      name: 'media and an embedding in one part',
      part: {
        type: 'input_embedding',
        input_embedding: { embedding: goodVector() },
        image_url: { url: 'data:image/png;base64,AAAA' },
      },
      param: 'messages[0].content[1].image_url',
      says: /unknown field/,
    },
    {
      name: 'a fused query with a weight',
      part: { type: 'input_embedding', input_embedding: { embedding: goodVector(), fused: true }, weight: 2 },
      param: 'messages[0].content[1].weight',
      says: /already carries its weights/,
    },
  ];

  it.each(bad.map((b) => [b.name, b] as const))('%s', async (_name, b) => {
    const { status, json } = await chat(gateway, {
      model: 'imagebind-llm',
      messages: [{ role: 'user', content: [instruction, b.part] }],
    });
    expect(status).toBe(400);
    expect(json.error?.type).toBe('invalid_request_error');
    expect(json.error?.param).toBe(b.param);
    expect(json.error?.message).toMatch(b.says);
  });

  it('a fused query beside another input (REST names the fused part)', async () => {
    const { status, json } = await chat(gateway, {
      model: 'imagebind-llm',
      messages: [
        {
          role: 'user',
          content: [
            instruction,
            { type: 'text', text: 'A dog.', imagebind_modality: true },
            { type: 'input_embedding', input_embedding: { embedding: goodVector(), fused: true } },
          ],
        },
      ],
    });
    expect(status).toBe(400);
    expect(json.error?.param).toBe('messages[0].content[2].input_embedding.fused');
    expect(json.error?.message).toMatch(/only input/);
  });

  it('gRPC: a short vector and a NaN are INVALID_ARGUMENT naming the field', async () => {
    const client = createClient(gatewayV1.GatewayServiceClient, gateway.grpcAddress);
    const refusal = async (inputs: gatewayV1.MultimodalInput[]): Promise<ServiceError> =>
      new Promise((resolve, reject) => {
        client.embed({ inputs, includeFused: false }, (error) => {
          if (error === null) reject(new Error('the request was accepted'));
          else resolve(error);
        });
      });
    try {
      const short = await refusal([embeddingInput(new Float32Array(512).fill(0.1))]);
      expect(short.code).toBe(status.INVALID_ARGUMENT);
      expect(short.metadata.get('ibllm-error-field')).toEqual(['inputs[0].embedding.vector.shape']);
      expect(short.details).toMatch(/must be \[1024\].*got \[512\]/);

      const girl = goldenEmbedding('girl');
      const nan = await refusal([
        embeddingInput(girl),
        embeddingInput(Float32Array.from(girl, (v, i) => (i === 9 ? NaN : v))),
      ]);
      expect(nan.code).toBe(status.INVALID_ARGUMENT);
      expect(nan.metadata.get('ibllm-error-field')).toEqual(['inputs[1].embedding.vector.data']);
      expect(nan.details).toMatch(/value 9 is NaN/);

      const fusedPair = await refusal([embeddingInput(girl, {}, true), embeddingInput(girl)]);
      expect(fusedPair.code).toBe(status.INVALID_ARGUMENT);
      expect(fusedPair.metadata.get('ibllm-error-field')).toEqual(['inputs[0].embedding.fused']);
    } finally {
      client.close();
    }
  });
});
