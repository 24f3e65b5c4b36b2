import { CACHE_LIMITS, GENERATION_LIMITS } from '@imagebind-llm/domain';
import type { gatewayV1 } from '@imagebind-llm/proto';
import { PartBudget, parseContentPart, type MediaPolicy } from './content-parts';
import {
  at,
  describeJson,
  expectArray,
  expectObject,
  invalidAt,
  isJsonObject,
  optionalBoolean,
  optionalNumber,
  optionalString,
  rejectUnknownKeys,
  requiredString,
  requireServedModel,
  type JsonObject,
  quoted,
} from './json-reader';

/** What `POST /v1/chat/completions` needs besides the body. */
export interface ChatParseOptions extends MediaPolicy {
  /** The one model id this deployment serves; `GET /v1/models` lists it. */
  readonly modelId: string;
}

/** A chat body turned into the gateway's Generate call plus how to answer it. */
export interface ParsedChatRequest {
  readonly request: gatewayV1.GenerateRequest;
  /** Answer as server-sent events (`stream: true`) or one JSON object. */
  readonly stream: boolean;
  /** `stream_options.include_usage`: send a usage chunk before `[DONE]`. */
  readonly includeUsage: boolean;
  /** The model id, echoed in every response. */
  readonly model: string;
  /**
   * The REST path each of `request.inputs` came from, in order: errors the services report about
   * `inputs[i]` are told in these terms (toOpenAiError).
   */
  readonly inputPaths: readonly string[];
}

const TOP_LEVEL_KEYS = [
  'model',
  'messages',
  'stream',
  'stream_options',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'seed',
  'n',
  'stop',
  'imagebind',
  // Bookkeeping fields OpenAI clients send; they change nothing about the answer.
  'user',
  'metadata',
  // Accepted only at their "off" values (see rejectUnsupported), because SDKs send those by default.
  'frequency_penalty',
  'presence_penalty',
  'logit_bias',
  'logprobs',
  'top_logprobs',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  'functions',
  'function_call',
  'response_format',
  'modalities',
] as const;

function isOff(key: string, value: unknown): boolean {
  switch (key) {
    case 'frequency_penalty':
    case 'presence_penalty':
    case 'top_logprobs':
      return value === 0;
    case 'logprobs':
      return value === false;
    case 'parallel_tool_calls':
      return typeof value === 'boolean';
    case 'logit_bias':
      return isJsonObject(value) && Object.keys(value).length === 0;
    case 'tools':
    case 'functions':
      return Array.isArray(value) && value.length === 0;
    case 'stop':
      return Array.isArray(value) && value.length === 0;
    case 'tool_choice':
    case 'function_call':
      return value === 'none' || value === 'auto';
    case 'response_format':
      return isJsonObject(value) && value['type'] === 'text' && Object.keys(value).length === 1;
    case 'modalities':
      return Array.isArray(value) && value.length === 1 && value[0] === 'text';
    default:
      return false;
  }
}

const UNSUPPORTED_WHY: Readonly<Record<string, string>> = {
  frequency_penalty:
    'repetition penalties are not part of ImageBind-LLM sampling (top-p only); omit it or send 0',
  presence_penalty:
    'repetition penalties are not part of ImageBind-LLM sampling (top-p only); omit it or send 0',
  logit_bias: 'logit bias is not supported; omit it',
  logprobs: 'log probabilities are not returned; omit it or send false',
  top_logprobs: 'log probabilities are not returned; omit it',
  tools: 'tool calling is not supported by ImageBind-LLM; omit tools',
  functions: 'function calling is not supported by ImageBind-LLM; omit functions',
  tool_choice: 'tool calling is not supported by ImageBind-LLM; omit tool_choice',
  function_call: 'function calling is not supported by ImageBind-LLM; omit function_call',
  parallel_tool_calls: 'must be true or false (and is ignored: there are no tools)',
  response_format: 'structured output is not supported; omit it or send {"type": "text"}',
  modalities: 'the model only answers in text; omit it or send ["text"]',
  stop: 'stop sequences are not supported; the answer ends at the end-of-sequence token or max_tokens',
};

function rejectUnsupported(body: JsonObject): void {
  for (const key of Object.keys(UNSUPPORTED_WHY)) {
    const value = body[key];
    if (value === undefined || value === null || isOff(key, value)) continue;
    throw invalidAt(key, UNSUPPORTED_WHY[key] ?? 'is not supported');
  }
}

function parseCache(value: unknown, path: string): gatewayV1.CacheOptions | undefined {
  if (value === undefined || value === null) return undefined;
  const obj = expectObject(value, path);
  rejectUnknownKeys(obj, path, ['enabled', 'size', 'temperature', 'weight']);
  // Ranges are the official sliders (MODEL_SPEC §1.3); unset fields keep the server defaults.
  const cache: gatewayV1.CacheOptions = {};
  const enabled = optionalBoolean(obj, 'enabled', path);
  const size = optionalNumber(obj, 'size', path, CACHE_LIMITS.size);
  const temperature = optionalNumber(obj, 'temperature', path, CACHE_LIMITS.temperature);
  const weight = optionalNumber(obj, 'weight', path, CACHE_LIMITS.weight);
  if (enabled !== undefined) cache.enabled = enabled;
  if (size !== undefined) cache.size = size;
  if (temperature !== undefined) cache.temperature = temperature;
  if (weight !== undefined) cache.weight = weight;
  return cache;
}

function parseExtension(body: JsonObject): { input: string; cache: gatewayV1.CacheOptions | undefined } {
  const value = body['imagebind'];
  if (value === undefined || value === null) return { input: '', cache: undefined };
  const ext = expectObject(value, 'imagebind');
  rejectUnknownKeys(ext, 'imagebind', ['input', 'cache']);
  return {
    input: optionalString(ext, 'input', 'imagebind') ?? '',
    cache: parseCache(ext['cache'], 'imagebind.cache'),
  };
}

function parseMaxTokens(body: JsonObject): number | undefined {
  const range = GENERATION_LIMITS.maxNewTokens;
  const legacy = optionalNumber(body, 'max_tokens', '', range);
  const current = optionalNumber(body, 'max_completion_tokens', '', range);
  if (legacy !== undefined && current !== undefined && legacy !== current) {
    throw invalidAt('max_completion_tokens', `conflicts with max_tokens (${legacy}); send only one of them`);
  }
  return current ?? legacy;
}

function parseSampling(body: JsonObject): gatewayV1.SamplingParameters | undefined {
  // The OpenAI ranges; the model's own defaults (temperature 0.1, top_p 0.75) apply when unset.
  const temperature = optionalNumber(body, 'temperature', '', GENERATION_LIMITS.temperature);
  const topP = optionalNumber(body, 'top_p', '', GENERATION_LIMITS.topP);
  const seed = optionalNumber(body, 'seed', '', GENERATION_LIMITS.seed);
  if (temperature === undefined && topP === undefined && seed === undefined) return undefined;
  const sampling: gatewayV1.SamplingParameters = {};
  if (temperature !== undefined) sampling.temperature = temperature;
  if (topP !== undefined) sampling.topP = topP;
  if (seed !== undefined) sampling.seed = seed;
  return sampling;
}

function parseStreamOptions(body: JsonObject, stream: boolean): boolean {
  const value = body['stream_options'];
  if (value === undefined || value === null) return false;
  if (!stream) throw invalidAt('stream_options', 'is only allowed with stream: true');
  const options = expectObject(value, 'stream_options');
  rejectUnknownKeys(options, 'stream_options', ['include_usage']);
  return optionalBoolean(options, 'include_usage', 'stream_options') ?? false;
}

/** The content of a system/developer message is checked for shape only, then dropped. */
function checkIgnoredContent(message: JsonObject, path: string): void {
  rejectUnknownKeys(message, path, ['role', 'content', 'name']);
  const content = message['content'];
  if (typeof content === 'string') return;
  expectArray(content, at(path, 'content')).forEach((part, i) => {
    const partPath = at(at(path, 'content'), i);
    const obj = expectObject(part, partPath);
    if (obj['type'] !== 'text') throw invalidAt(at(partPath, 'type'), 'must be "text" in a system message');
  });
}

interface UserTurn {
  readonly inputs: gatewayV1.MultimodalInput[];
  readonly inputPaths: string[];
  /** Instruction text of the last user message, and where each piece came from. */
  readonly texts: { readonly text: string; readonly path: string; readonly message: number }[];
  lastUser: number;
}

function parseUserMessage(
  message: JsonObject,
  index: number,
  policy: MediaPolicy,
  budget: PartBudget,
  turn: UserTurn,
): void {
  const path = at('messages', index);
  rejectUnknownKeys(message, path, ['role', 'content', 'name']);
  const content = message['content'];
  const contentPath = at(path, 'content');
  turn.lastUser = index;
  if (typeof content === 'string') {
    budget.countPart(contentPath);
    turn.texts.push({ text: content, path: contentPath, message: index });
    return;
  }
  const parts = expectArray(content, contentPath);
  if (parts.length === 0) throw invalidAt(contentPath, 'must not be empty; send at least one content part');
  parts.forEach((part, i) => {
    const partPath = at(contentPath, i);
    const parsed = parseContentPart(part, partPath, policy, budget, false);
    if (parsed.kind === 'input') {
      turn.inputs.push(parsed.input);
      turn.inputPaths.push(partPath);
    } else {
      turn.texts.push({ text: parsed.text, path: partPath, message: index });
    }
  });
}

function parseMessages(value: unknown, policy: MediaPolicy, budget: PartBudget): UserTurn {
  if (value === undefined || value === null) {
    throw invalidAt(
      'messages',
      'is required: an array with one user message holding the instruction and inputs',
    );
  }
  const messages = expectArray(value, 'messages');
  if (messages.length === 0) {
    throw invalidAt('messages', 'must not be empty; send one user message with the instruction and inputs');
  }
  const turn: UserTurn = { inputs: [], inputPaths: [], texts: [], lastUser: -1 };
  messages.forEach((raw, i) => {
    const path = at('messages', i);
    const message = expectObject(raw, path);
    const role = requiredString(message, 'role', path, 'user (or system, which is ignored)');
    switch (role) {
      case 'user':
        parseUserMessage(message, i, policy, budget, turn);
        return;
      case 'system':
      case 'developer':
        checkIgnoredContent(message, path);
        return;
      case 'assistant':
      case 'tool':
      case 'function':
        throw invalidAt(
          at(path, 'role'),
          'multi-turn conversations are not supported by ImageBind-LLM; send one user message',
        );
      default:
        throw invalidAt(
          at(path, 'role'),
          `${quoted(role)} is not a chat role; use user (system messages are ignored)`,
        );
    }
  });
  if (turn.lastUser < 0) {
    throw invalidAt('messages', 'has no user message; send one with the instruction and inputs');
  }
  return turn;
}

/**
 * Turns an OpenAI-compatible `POST /v1/chat/completions` body into a Generate request.
 *
 * ImageBind-LLM answers ONE instruction about a set of weighted inputs (MODEL_SPEC §1.1), so:
 * - the instruction is the text of the LAST user message, its text parts joined by newlines;
 *   earlier user messages may carry inputs (media, TEXT-modality parts) but no instruction text;
 * - every media part of every user message becomes an input, in order, with its `weight`;
 * - `system` / `developer` messages are accepted and IGNORED: the prompt template is fixed
 *   (MODEL_SPEC §5.9) and has no slot for them; rejecting them would break stock clients that
 *   always send one;
 * - `assistant` / `tool` messages (an earlier turn) are rejected: the model has no memory of them;
 * - the extension object `imagebind` carries `input` (the prompt's "### Input:" context) and
 *   `cache` (visual cache knobs, MODEL_SPEC §1.4).
 * Every rejection is a DomainError whose message starts with the JSON path of the bad value:
 * INVALID_INPUT for malformed values, PAYLOAD_TOO_LARGE for size limits, NOT_FOUND (field
 * `model`) for a model this deployment does not serve.
 */
export function parseChatCompletionRequest(body: unknown, options: ChatParseOptions): ParsedChatRequest {
  const obj = expectObject(body, '');
  rejectUnknownKeys(obj, '', TOP_LEVEL_KEYS);
  const model = requireServedModel(obj, options.modelId);
  rejectUnsupported(obj);
  const n = obj['n'];
  if (n !== undefined && n !== null && n !== 1) {
    const got = typeof n === 'number' ? String(n) : describeJson(n);
    throw invalidAt('n', `only one choice per request is supported; omit n or send 1 (got ${got})`);
  }
  const stream = optionalBoolean(obj, 'stream', '') ?? false;
  const includeUsage = parseStreamOptions(obj, stream);
  const maxNewTokens = parseMaxTokens(obj);
  const sampling = parseSampling(obj);
  const { input, cache } = parseExtension(obj);

  const turn = parseMessages(obj['messages'], options, new PartBudget(options.limits));
  const stray = turn.texts.find((t) => t.message !== turn.lastUser);
  if (stray !== undefined) {
    throw invalidAt(
      stray.path,
      'only the last user message may hold instruction text; move this text there, or set imagebind_modality: true to embed it as an input',
    );
  }
  const instruction = turn.texts.map((t) => t.text).join('\n');
  if (instruction.trim() === '') {
    throw invalidAt(
      at(at('messages', turn.lastUser), 'content'),
      'has no instruction text; add a text part with the question the model should answer',
    );
  }
  if (turn.inputs.length === 0) {
    throw invalidAt(
      'messages',
      'ImageBind-LLM answers about inputs: add at least one image_url, input_audio, video_url, input_point_cloud or input_embedding part, or a text part with imagebind_modality: true',
    );
  }

  const request: gatewayV1.GenerateRequest = { inputs: turn.inputs, instruction, input };
  if (cache !== undefined) request.cache = cache;
  if (sampling !== undefined) request.sampling = sampling;
  if (maxNewTokens !== undefined) request.stopping = { maxNewTokens };
  return { request, stream, includeUsage, model, inputPaths: turn.inputPaths };
}
