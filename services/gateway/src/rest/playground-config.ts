import { CACHE_DEFAULTS, GENERATION_DEFAULTS, GENERATION_LIMITS } from '@imagebind-llm/domain';
import { AUDIO_FORMATS, POINT_CLOUD_FORMATS, type RestLimits } from './content-parts';

/** What the web playground needs to know before it builds a request (`GET /v1/playground/config`). */
export interface PlaygroundConfig {
  readonly model: string;
  readonly limits: {
    readonly max_input_bytes: number;
    readonly max_body_bytes: number;
    readonly max_inputs: number;
    readonly max_tokens: number;
  };
  readonly formats: {
    /** MIME types the image decoder reads (it sniffs JPEG, PNG, GIF and WebP). */
    readonly image: readonly string[];
    /** MIME types of containers ffmpeg reads for video. */
    readonly video: readonly string[];
    /** `input_audio.format` values. */
    readonly audio: readonly string[];
    /** `input_point_cloud.format` values. */
    readonly point_cloud: readonly string[];
  };
  /** The official Gradio demo's defaults (MODEL_SPEC §1.3). */
  readonly defaults: {
    readonly max_tokens: number;
    readonly temperature: number;
    readonly top_p: number;
    readonly cache: {
      readonly enabled: boolean;
      readonly size: number;
      readonly temperature: number;
      readonly weight: number;
    };
  };
}

/** The knobs' starting values: the gradio demo's max length, the service's sampling defaults. */
const PLAYGROUND_MAX_TOKENS = 128;

export function playgroundConfig(modelId: string, limits: RestLimits, maxInputs: number): PlaygroundConfig {
  return {
    model: modelId,
    limits: {
      max_input_bytes: limits.maxPartBytes,
      max_body_bytes: limits.maxBodyBytes,
      max_inputs: maxInputs,
      max_tokens: GENERATION_LIMITS.maxNewTokens.max,
    },
    formats: {
      image: ['image/jpeg', 'image/png', 'image/gif', 'image/webp'],
      video: ['video/mp4', 'video/webm', 'video/quicktime', 'video/x-matroska'],
      audio: Object.keys(AUDIO_FORMATS),
      point_cloud: Object.keys(POINT_CLOUD_FORMATS),
    },
    defaults: {
      max_tokens: PLAYGROUND_MAX_TOKENS,
      temperature: GENERATION_DEFAULTS.temperature,
      top_p: GENERATION_DEFAULTS.topP,
      cache: { enabled: true, ...CACHE_DEFAULTS },
    },
  };
}
