/** The playground's settings from `GET /v1/playground/config`, read defensively. */
import {
  CACHE_DEFAULTS,
  CACHE_LIMITS,
  GENERATION_DEFAULTS,
  GENERATION_LIMITS,
  type LimitRange,
} from '@imagebind-llm/domain';

export interface CacheSettings {
  readonly enabled: boolean;
  readonly size: number;
  readonly temperature: number;
  readonly weight: number;
}

export interface PlaygroundConfig {
  readonly model: string;
  readonly limits: {
    readonly maxInputBytes: number;
    readonly maxBodyBytes: number;
    readonly maxInputs: number;
    readonly maxTokens: number;
  };
  readonly formats: {
    /** MIME types. */
    readonly image: readonly string[];
    /** MIME types. */
    readonly video: readonly string[];
    /** File extensions without the dot. */
    readonly audio: readonly string[];
    /** File extensions without the dot. */
    readonly pointCloud: readonly string[];
  };
  readonly defaults: {
    readonly maxTokens: number;
    readonly temperature: number;
    readonly topP: number;
    readonly cache: CacheSettings;
  };
}

/**
 * What the page assumes while the config has not loaded (or could not be loaded): the gateway's
 * own defaults. The server checks everything again, so a stale value here costs a readable error
 * from the server at worst.
 */
export const FALLBACK_CONFIG: PlaygroundConfig = {
  model: 'imagebind-llm',
  limits: {
    maxInputBytes: 32 * 1024 * 1024,
    maxBodyBytes: 48 * 1024 * 1024,
    maxInputs: 16,
    maxTokens: GENERATION_LIMITS.maxNewTokens.max,
  },
  formats: {
    image: ['image/jpeg', 'image/png', 'image/gif', 'image/webp'],
    video: ['video/mp4', 'video/webm', 'video/quicktime', 'video/x-matroska'],
    audio: ['wav', 'mp3', 'flac', 'ogg', 'opus', 'm4a', 'aac', 'webm'],
    pointCloud: ['npy', 'ply', 'pcd', 'obj', 'xyz', 'pts', 'txt', 'pt'],
  },
  defaults: {
    maxTokens: 128,
    temperature: GENERATION_DEFAULTS.temperature,
    topP: GENERATION_DEFAULTS.topP,
    cache: { enabled: true, ...CACHE_DEFAULTS },
  },
};

type Json = Record<string, unknown>;

const objectAt = (value: unknown): Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {};

const positive = (value: unknown, fallback: number): number =>
  typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : fallback;

const inRange = (value: unknown, min: number, max: number, fallback: number): number =>
  typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max ? value : fallback;

/** A value within one of the shared ranges, else the fallback. */
const inLimits = (value: unknown, range: LimitRange, fallback: number): number =>
  inRange(value, range.min, range.max, fallback);

function strings(value: unknown, fallback: readonly string[], normalise: (s: string) => string): string[] {
  if (!Array.isArray(value)) return [...fallback];
  const list = value.filter((v): v is string => typeof v === 'string' && v.trim() !== '').map(normalise);
  return list.length > 0 ? list : [...fallback];
}

const mime = (s: string): string => s.trim().toLowerCase();
const extension = (s: string): string => s.trim().toLowerCase().replace(/^\./, '');

/** Reads the JSON the server sent; any missing or malformed field keeps its fallback. */
export function readConfig(json: unknown): PlaygroundConfig {
  const root = objectAt(json);
  const limits = objectAt(root['limits']);
  const formats = objectAt(root['formats']);
  const defaults = objectAt(root['defaults']);
  const cache = objectAt(defaults['cache']);
  const f = FALLBACK_CONFIG;
  const maxTokens = Math.floor(positive(limits['max_tokens'], f.limits.maxTokens));
  return {
    model: typeof root['model'] === 'string' && root['model'] !== '' ? root['model'] : f.model,
    limits: {
      maxInputBytes: positive(limits['max_input_bytes'], f.limits.maxInputBytes),
      maxBodyBytes: positive(limits['max_body_bytes'], f.limits.maxBodyBytes),
      maxInputs: Math.floor(positive(limits['max_inputs'], f.limits.maxInputs)),
      maxTokens,
    },
    formats: {
      image: strings(formats['image'], f.formats.image, mime),
      video: strings(formats['video'], f.formats.video, mime),
      audio: strings(formats['audio'], f.formats.audio, extension),
      pointCloud: strings(formats['point_cloud'], f.formats.pointCloud, extension),
    },
    defaults: {
      maxTokens: Math.floor(
        inRange(defaults['max_tokens'], 1, maxTokens, Math.min(f.defaults.maxTokens, maxTokens)),
      ),
      temperature: inLimits(defaults['temperature'], GENERATION_LIMITS.temperature, f.defaults.temperature),
      topP: inLimits(defaults['top_p'], GENERATION_LIMITS.topP, f.defaults.topP),
      cache: {
        enabled: typeof cache['enabled'] === 'boolean' ? cache['enabled'] : f.defaults.cache.enabled,
        size: Math.floor(inLimits(cache['size'], CACHE_LIMITS.size, f.defaults.cache.size)),
        temperature: inLimits(cache['temperature'], CACHE_LIMITS.temperature, f.defaults.cache.temperature),
        weight: inLimits(cache['weight'], CACHE_LIMITS.weight, f.defaults.cache.weight),
      },
    },
  };
}
