import { attr, type GraphBuilder } from './onnx-graph';

/**
 * RMSNorm as the official code computes it (MODEL_SPEC §5.2): x · rsqrt(mean(x²) + eps) · γ,
 * reducing over the last axis, all in float32. One SimplifiedLayerNormalization node (onnxruntime's
 * fused kernel, on the CPU and WebGPU providers alike) instead of the seven elementwise and reduce
 * nodes it stands for: on a GPU each node is a kernel the host pays for on every step.
 */
export function rmsNorm(g: GraphBuilder, x: string, gamma: string, eps: number): string {
  return g.op1('SimplifiedLayerNormalization', [x, gamma], {
    axis: attr.int(-1),
    epsilon: attr.float(eps),
    stash_type: attr.int(1),
  });
}

/** LayerNorm over the last axis (legacy bind network variant, MODEL_SPEC §4). */
export function layerNorm(g: GraphBuilder, x: string, gamma: string, beta: string, eps: number): string {
  return g.op1('LayerNormalization', [x, gamma, beta], { axis: attr.int(-1), epsilon: attr.float(eps) });
}

/** SiLU(z) = z · σ(z). */
export function silu(g: GraphBuilder, z: string): string {
  return g.op1('Mul', [z, g.op1('Sigmoid', [z])]);
}
