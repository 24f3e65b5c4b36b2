export interface SamplingParams {
  /** 0 means greedy (argmax). */
  readonly temperature: number;
  readonly topP: number;
  readonly seed: bigint;
}

/** Index of the largest logit; the first one on ties, as torch.argmax. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = logits[0] ?? -Infinity;
  for (let i = 1; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/**
 * A uniform draw in [0, 1) that depends only on (seed, step): splitmix64 over the pair. Tying the
 * draw to the step index (not to a running RNG state) makes a resumed stream continue exactly as
 * the broken one would have (proto `SamplingParameters.seed`).
 */
export function uniformAt(seed: bigint, step: number): number {
  let z = BigInt.asUintN(64, seed + BigInt(step + 1) * 0x9e3779b97f4a7c15n);
  z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
  z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
  z ^= z >> 31n;
  // 53 high bits → a double in [0, 1)
  return Number(z >> 11n) / 2 ** 53;
}

/** softmax(logits / temperature) in float64 (the official code uses float32; sampling is not cross-comparable anyway). */
export function softmaxWithTemperature(logits: Float32Array, temperature: number): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]! / temperature);
  const probs = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp(logits[i]! / temperature - max);
    probs[i] = e;
    sum += e;
  }
  for (let i = 0; i < probs.length; i++) probs[i]! /= sum;
  return probs;
}

/**
 * Nucleus sampling exactly as MODEL_SPEC §5.8: sort descending, zero every entry whose *exclusive*
 * cumulative mass exceeds top_p (the first entry always survives, so top_p = 0 is greedy-like),
 * renormalise, draw with `u` ∈ [0, 1). Returns the token id and its probability after the mask.
 */
export function sampleTopP(probs: Float64Array, topP: number, u: number): { id: number; prob: number } {
  // The full descending order is only needed up to where the mask cuts it. Every set
  // {i : p_i ≥ τ} is a prefix of that order (ties at τ included), so sort just that prefix and widen
  // τ until the cut falls inside it; the result is identical to sorting the whole vocabulary, in
  // O(V) instead of O(V log V) per token for peaked distributions (temperature 0.1 by default).
  let max = 0;
  for (let i = 0; i < probs.length; i++) if (probs[i]! > max) max = probs[i]!;
  for (const threshold of [max / 64, max / 4096, max * 1e-9, -1]) {
    const order: number[] = [];
    const all = threshold < 0;
    for (let i = 0; i < probs.length; i++) if (all || probs[i]! >= threshold) order.push(i);
    order.sort((a, b) => probs[b]! - probs[a]! || a - b);
    let cumulative = 0;
    let kept = 0;
    for (const idx of order) {
      if (cumulative > topP) break; // exclusive mass of this and every later entry exceeds p
      cumulative += probs[idx]!;
      kept++;
    }
    // The cut must be seen inside the prefix (or the prefix is everything) to be the true cut.
    if (kept < order.length || cumulative > topP || all) return drawFrom(order, kept, probs, cumulative, u);
  }
  throw new Error('unreachable: the last threshold keeps every entry');
}

function drawFrom(
  order: readonly number[],
  kept: number,
  probs: Float64Array,
  keptMass: number,
  u: number,
): { id: number; prob: number } {
  const target = u * keptMass;
  let acc = 0;
  for (let i = 0; i < kept; i++) {
    const idx = order[i]!;
    acc += probs[idx]!;
    if (target < acc) return { id: idx, prob: probs[idx]! / keptMass };
  }
  const last = order[kept - 1]!;
  return { id: last, prob: probs[last]! / keptMass };
}

/**
 * Picks the next token of one row: greedy when temperature is 0, else top-p (§5.7 step 4.3).
 * The log-probability costs a pass over the vocabulary on the greedy path, so it is computed only
 * when asked for.
 */
export function pickToken(
  logits: Float32Array,
  params: SamplingParams,
  step: number,
  wantLogprob = true,
): { id: number; logprob?: number } {
  if (params.temperature <= 0) {
    const id = argmax(logits);
    if (!wantLogprob) return { id };
    // log softmax at the argmax: −log Σ exp(x − max)
    const max = logits[id]!;
    let sum = 0;
    for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
    return { id, logprob: -Math.log(sum) };
  }
  const probs = softmaxWithTemperature(logits, params.temperature);
  const { id, prob } = sampleTopP(probs, params.topP, uniformAt(params.seed, step));
  return { id, logprob: Math.log(prob) };
}
