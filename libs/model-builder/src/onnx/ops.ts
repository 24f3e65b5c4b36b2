import { attr, type GraphBuilder } from './onnx-graph';

/**
 * RMSNorm as the official code computes it (MODEL_SPEC §5.2): x · rsqrt(mean(x²) + eps) · γ,
 * reducing over the last axis, all in float32.
 */
export function rmsNorm(g: GraphBuilder, x: string, gamma: string, eps: number): string {
  const sq = g.op1('Mul', [x, x]);
  const mean = g.op1('ReduceMean', [sq], { axes: attr.ints([-1]), keepdims: attr.int(1) });
  const plusEps = g.op1('Add', [mean, g.floats([eps], [])]);
  const rsqrt = g.op1('Reciprocal', [g.op1('Sqrt', [plusEps])]);
  return g.op1('Mul', [g.op1('Mul', [x, rsqrt]), gamma]);
}

/** LayerNorm over the last axis (legacy bind network variant, MODEL_SPEC §4). */
export function layerNorm(g: GraphBuilder, x: string, gamma: string, beta: string, eps: number): string {
  return g.op1('LayerNormalization', [x, gamma, beta], { axis: attr.int(-1), epsilon: attr.float(eps) });
}

/** SiLU(z) = z · σ(z). */
export function silu(g: GraphBuilder, z: string): string {
  return g.op1('Mul', [z, g.op1('Sigmoid', [z])]);
}
