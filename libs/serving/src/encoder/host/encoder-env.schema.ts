import { env, envVar, preprocessEnv } from '@imagebind-llm/config';
import { DEFAULT_ENCODER_LIMITS } from '../encoder.service-impl';
import { modelServiceEnv } from '../../host/model-service-env.schema';

/**
 * How long an encoder's partial batch waits to fill (ms) unless a deployable says otherwise: long
 * enough to gather a burst, short against an encoder's run time. Standalone mode uses it too.
 */
export const ENCODER_MAX_DELAY_MS = 5;

/** Defaults one encoder deployable differs in. */
export interface EncoderEnvDefaults {
  readonly grpcPort: number;
  readonly httpPort: number;
  /** Rows per session call: an image or text is 1, a video 15 clips, an audio file 3. */
  readonly maxBatch: number;
  /** Rows that may wait before requests are refused with RESOURCE_EXHAUSTED. */
  readonly maxQueue: number;
  /** Default ENCODER_MAX_DELAY_MS. */
  readonly maxDelayMs?: number;
  /**
   * Most inputs per request (default 64). A request must fit the queue whole, so keep
   * maxInputs × rows per input ≤ maxQueue (vision: 16 videos × 15 clips = 240 ≤ 256).
   */
  readonly maxInputs?: number;
}

/** Every setting of an encoder service (encoder-vision, -audio, -text, -point). */
export function encoderEnvSchema(defaults: EncoderEnvDefaults) {
  return {
    ...modelServiceEnv({
      grpcPort: defaults.grpcPort,
      httpPort: defaults.httpPort,
      maxBatch: defaults.maxBatch,
      maxDelayMs: defaults.maxDelayMs ?? ENCODER_MAX_DELAY_MS,
      maxQueue: defaults.maxQueue,
    }),
    ENCODER_MAX_INPUTS: envVar(
      env.positiveInt(defaults.maxInputs ?? DEFAULT_ENCODER_LIMITS.maxInputs, 4096),
      'most inputs one Encode request may carry; more get RESOURCE_EXHAUSTED',
    ),
    ENCODER_MAX_INPUT_BYTES: envVar(
      env.positiveInt(DEFAULT_ENCODER_LIMITS.maxInputBytes, 1024 * 1024 * 1024),
      'largest single input (file bytes, text or preprocessed tensor), in bytes',
    ),
    PREPROCESS_CONCURRENCY: envVar(
      env.nonNegativeInt(0, 1024),
      'inputs decoded and preprocessed at once; 0 = the number of CPUs',
    ),
    ...preprocessEnv(),
  };
}
