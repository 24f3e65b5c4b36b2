/** The JSON bodies the playground sends, built from inputs that are already encoded. */
import type { CacheSettings } from './config';
import type { Modality } from './inputs';

/** One input ready for the wire: media as base64, text as itself. */
export interface WireInput {
  readonly modality: Modality;
  readonly weight: number;
  /** Base64 of the file (media inputs). */
  readonly base64?: string;
  /** The data: URL media type (image, video). */
  readonly mediaType?: string;
  /** The API's `format` (audio, point cloud). */
  readonly format?: string;
  /** The text (text inputs). */
  readonly text?: string;
}

export type ContentPart =
  | { type: 'text'; text: string; imagebind_modality?: true; weight?: number }
  | { type: 'image_url'; image_url: { url: string }; weight: number }
  | { type: 'video_url'; video_url: { url: string }; weight: number }
  | { type: 'input_audio'; input_audio: { data: string; format: string }; weight: number }
  | { type: 'input_point_cloud'; input_point_cloud: { data: string; format: string }; weight: number };

/** One input as an OpenAI-style content part (text inputs carry `imagebind_modality: true`). */
export function toContentPart(input: WireInput): ContentPart {
  const weight = input.weight;
  const data = input.base64 ?? '';
  switch (input.modality) {
    case 'image':
      return { type: 'image_url', image_url: { url: `data:${input.mediaType};base64,${data}` }, weight };
    case 'video':
      return { type: 'video_url', video_url: { url: `data:${input.mediaType};base64,${data}` }, weight };
    case 'audio':
      return { type: 'input_audio', input_audio: { data, format: input.format ?? '' }, weight };
    case 'point_cloud':
      return { type: 'input_point_cloud', input_point_cloud: { data, format: input.format ?? '' }, weight };
    case 'text':
      return { type: 'text', text: input.text ?? '', imagebind_modality: true, weight };
  }
}

export interface GenerationSettings {
  readonly instruction: string;
  /** The optional "### Input:" text of the prompt. */
  readonly inputText: string;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly cache: CacheSettings;
}

/** `POST /v1/chat/completions`, streamed with a usage chunk. The instruction is content part 0. */
export function chatBody(model: string, inputs: readonly WireInput[], settings: GenerationSettings): object {
  return {
    model,
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: settings.maxTokens,
    temperature: settings.temperature,
    top_p: settings.topP,
    messages: [
      {
        role: 'user',
        content: [{ type: 'text', text: settings.instruction }, ...inputs.map(toContentPart)],
      },
    ],
    imagebind: {
      input: settings.inputText,
      cache: {
        enabled: settings.cache.enabled,
        size: settings.cache.size,
        temperature: settings.cache.temperature,
        weight: settings.cache.weight,
      },
    },
  };
}

/** Embeddings/search parts: every text part is a TEXT input there, so no flag is needed. */
function plainParts(inputs: readonly WireInput[]): ContentPart[] {
  return inputs.map((input) =>
    input.modality === 'text'
      ? { type: 'text', text: input.text ?? '', weight: input.weight }
      : toContentPart(input),
  );
}

/** `POST /v1/embeddings` with the inputs as `imagebind_inputs`, one vector back per input. */
export function embeddingsBody(model: string, inputs: readonly WireInput[]): object {
  return { model, imagebind_inputs: plainParts(inputs) };
}

/** `POST /v1/search`: the fused query of the inputs against the cache index, top `k`. */
export function searchBody(model: string, inputs: readonly WireInput[], k: number): object {
  return { model, inputs: plainParts(inputs), k };
}

/**
 * Which input (0-based, in the order sent) a server error is about, from its `param` or, failing
 * that, the JSON path its message starts with. In chat, content part 0 is the instruction, so
 * `messages[0].content[2]` is input 1; `imagebind_inputs[i]` and `inputs[i]` (the gateway's own
 * numbering of inputs) name input i directly.
 */
export function inputIndexOfError(param: string | null | undefined, message: string): number | undefined {
  for (const source of [param ?? '', message.split(':')[0] ?? '']) {
    const content = /(?:^|\.)content\[(\d+)\]/.exec(source);
    if (content !== null) {
      const index = Number(content[1]) - 1;
      return index >= 0 ? index : undefined;
    }
    const listed = /(?:^|\.)(?:imagebind_inputs|inputs)\[(\d+)\]/.exec(source);
    if (listed !== null) return Number(listed[1]);
  }
  return undefined;
}
