/**
 * Every limit and default of a generation request, in one place: the gateway's gRPC and REST
 * validation, the decoder service, the language pipeline, the CLI and the playground's
 * configuration all read them from here (issue #19); the cache's defaults are CACHE_DEFAULTS
 * (fusion.ts). MODEL_SPEC §1.3 (the official knobs and
 * sliders) and §5.7–5.8 (the decode loop) are the reference.
 */
/** A closed numeric range; `integer` when only whole numbers are allowed. */
export interface LimitRange {
  readonly min: number;
  readonly max: number;
  readonly integer?: boolean;
}

/** The official model's context: prompt plus answer fit 512 positions (MODEL_SPEC B16). */
export const CONTEXT_TOKENS = 512;

/** What applies when a request leaves a field unset (the official `generate` defaults). */
export const GENERATION_DEFAULTS = {
  temperature: 0.1,
  topP: 0.75,
  maxNewTokens: 256,
} as const;

/**
 * What a request may ask for. Temperature: OpenAI's [0, 2], which holds the official slider's
 * [0, 1] (0 = greedy). top_p: [0, 1] (0 keeps the most likely token, MODEL_SPEC §5.8). New tokens:
 * at most the context (the prompt shortens it further). Seed: what `randomInt` and a JSON number
 * carry exactly.
 */
export const GENERATION_LIMITS = {
  temperature: { min: 0, max: 2 },
  topP: { min: 0, max: 1 },
  maxNewTokens: { min: 1, max: CONTEXT_TOKENS, integer: true },
  seed: { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true },
} as const satisfies Record<string, LimitRange>;

/** The visual cache's knobs (MODEL_SPEC §1.3 sliders): size 1..100, t 0..100, weight 0..1. */
export const CACHE_LIMITS = {
  size: { min: 1, max: 100, integer: true },
  temperature: { min: 0, max: 100 },
  weight: { min: 0, max: 1 },
} as const satisfies Record<string, LimitRange>;

/** Whether `value` lies in `range` (and is whole where the range asks for it). */
export function inLimit(value: number, range: LimitRange): boolean {
  return (
    Number.isFinite(value) &&
    value >= range.min &&
    value <= range.max &&
    (range.integer !== true || Number.isInteger(value))
  );
}

/** `[min, max]` for messages, e.g. "[0, 2]". */
export function describeLimit(range: LimitRange): string {
  return `${range.integer === true ? 'an integer' : 'a number'} in [${range.min}, ${range.max}]`;
}
