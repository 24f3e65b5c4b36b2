import { denseFromCheckpoint, type WeightFormat } from './onnx/linear-weights';
import { layerNorm, rmsNorm, silu } from './onnx/ops';
import { GraphBuilder, OnnxType, type InitializerSink } from './onnx/onnx-graph';
import type { WeightStore } from './weights';

/** Shape of the bind network, read from the adapter checkpoint (MODEL_SPEC §4). */
export interface BindConfig {
  /** ImageBind embedding width (1024). */
  readonly inDim: number;
  /** LLM width (4096 for 7B). */
  readonly dim: number;
  /** Hidden width of each bridge block (16384 for 7B). */
  readonly hidden: number;
  /** Number of bridge blocks (3). */
  readonly blocks: number;
  /** `legacy_bridge`: LayerNorm(eps 1e-5) and biased linears, detected by `image_bind_norm_1.bias`. */
  readonly legacy: boolean;
}

export const BIND_RMS_EPS = 1e-6;
export const BIND_LEGACY_LN_EPS = 1e-5;

export function detectBindConfig(weights: WeightStore): BindConfig {
  const proj = weights.shape('image_bind_proj.weight');
  const f1 = weights.shape('image_bind_f1_1.weight');
  let blocks = 0;
  while (weights.has(`image_bind_norm_${blocks + 1}.weight`)) blocks++;
  if (proj.length !== 2 || f1.length !== 2 || blocks === 0) {
    throw new Error(
      'the adapter checkpoint has no bind network (image_bind_proj / image_bind_f1_1 / image_bind_norm_1)',
    );
  }
  return {
    inDim: proj[1]!,
    dim: proj[0]!,
    hidden: f1[0]!,
    blocks,
    legacy: weights.has('image_bind_norm_1.bias'),
  };
}

/** Every key the bind network reads, with its shape, for strict validation. */
export function bindKeys(c: BindConfig): Map<string, readonly number[]> {
  const keys = new Map<string, readonly number[]>([
    ['image_bind_proj.weight', [c.dim, c.inDim]],
    ['image_bind_proj.bias', [c.dim]],
  ]);
  for (let k = 1; k <= c.blocks; k++) {
    keys.set(`image_bind_norm_${k}.weight`, [c.dim]);
    keys.set(`image_bind_f1_${k}.weight`, [c.hidden, c.dim]);
    keys.set(`image_bind_f2_${k}.weight`, [c.dim, c.hidden]);
    keys.set(`image_bind_f3_${k}.weight`, [c.hidden, c.dim]);
    if (c.legacy) {
      keys.set(`image_bind_norm_${k}.bias`, [c.dim]);
      keys.set(`image_bind_f1_${k}.bias`, [c.hidden]);
      keys.set(`image_bind_f2_${k}.bias`, [c.dim]);
      keys.set(`image_bind_f3_${k}.bias`, [c.hidden]);
    }
  }
  return keys;
}

/**
 * bind.onnx: queries [batch, 1024] → visual_query [batch, dim] (MODEL_SPEC §4):
 * x = proj(q); for each block: x += f2(SiLU(f1(norm(x))) ⊙ f3(norm(x))).
 */
export async function buildBindGraph(
  weights: WeightStore,
  c: BindConfig,
  sink?: InitializerSink,
  format: WeightFormat = 'fp32',
): Promise<GraphBuilder> {
  const g = new GraphBuilder('imagebind_llm_bind', sink);
  const q = g.input(
    'queries',
    OnnxType.FLOAT,
    ['batch', c.inDim],
    'fused (cache-blended) ImageBind query q′',
  );
  const vec = async (name: string, n: number): Promise<string> =>
    g.floatInit(name, [n], await weights.f32(name, [n]));
  const dense = async (
    x: string,
    name: string,
    out: number,
    inn: number,
    withBias: boolean,
  ): Promise<string> => denseFromCheckpoint(g, weights, x, name, out, inn, withBias, format);

  let x = await dense(q, 'image_bind_proj', c.dim, c.inDim, true);
  for (let k = 1; k <= c.blocks; k++) {
    const gamma = await vec(`image_bind_norm_${k}.weight`, c.dim);
    const n = c.legacy
      ? layerNorm(g, x, gamma, await vec(`image_bind_norm_${k}.bias`, c.dim), BIND_LEGACY_LN_EPS)
      : rmsNorm(g, x, gamma, BIND_RMS_EPS);
    const h1 = await dense(n, `image_bind_f1_${k}`, c.hidden, c.dim, c.legacy);
    const h3 = await dense(n, `image_bind_f3_${k}`, c.hidden, c.dim, c.legacy);
    const f = await dense(g.op1('Mul', [silu(g, h1), h3]), `image_bind_f2_${k}`, c.dim, c.hidden, c.legacy);
    x = g.op1('Add', [x, f]);
  }
  g.output(x, 'visual_query', OnnxType.FLOAT, ['batch', c.dim], 'visual query v (bind network output)');
  return g;
}
