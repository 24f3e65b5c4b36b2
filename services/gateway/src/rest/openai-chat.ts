import { z } from '@imagebind-llm/config';
import { CACHE_LIMITS, GENERATION_LIMITS } from '@imagebind-llm/domain';
import type { gatewayV1 } from '@imagebind-llm/proto';
import { contentPartSchema, PartBudget, parseContentPart, type MediaPolicy } from './content-parts';
import {
  at,
  describeJson,
  invalidAt,
  numberIn,
  parseJson,
  perModel,
  present,
  quoted,
  required,
  servedModel,
} from './json-schema';

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

/**
 * A field of a feature the model lacks, accepted only at its "off" value (`off`, the schema of
 * that value), because SDKs send those by default; anything else is refused saying why.
 */
const offOnly = (off: z.ZodType, why: string) =>
  z
    .unknown()
    .refine((value) => value === null || off.safeParse(value).success, { error: why })
    .optional();

const PENALTY = 'repetition penalties are not part of ImageBind-LLM sampling (top-p only); omit it or send 0';
const NO_TOOLS = 'tool calling is not supported by ImageBind-LLM';
const NO_FUNCTIONS = 'function calling is not supported by ImageBind-LLM';

const UNSUPPORTED = {
  frequency_penalty: offOnly(z.literal(0), PENALTY),
  presence_penalty: offOnly(z.literal(0), PENALTY),
  logit_bias: offOnly(z.strictObject({}), 'logit bias is not supported; omit it'),
  logprobs: offOnly(z.literal(false), 'log probabilities are not returned; omit it or send false'),
  top_logprobs: offOnly(z.literal(0), 'log probabilities are not returned; omit it'),
  tools: offOnly(z.tuple([]), `${NO_TOOLS}; omit tools`),
  tool_choice: offOnly(z.enum(['none', 'auto']), `${NO_TOOLS}; omit tool_choice`),
  parallel_tool_calls: offOnly(z.boolean(), 'must be true or false (and is ignored: there are no tools)'),
  functions: offOnly(z.tuple([]), `${NO_FUNCTIONS}; omit functions`),
  function_call: offOnly(z.enum(['none', 'auto']), `${NO_FUNCTIONS}; omit function_call`),
  response_format: offOnly(
    z.strictObject({ type: z.literal('text') }),
    'structured output is not supported; omit it or send {"type": "text"}',
  ),
  modalities: offOnly(
    z.tuple([z.literal('text')]),
    'the model only answers in text; omit it or send ["text"]',
  ),
};

/** A message's content: a string, or an array of parts (`parts`). */
const contentOf = <T extends z.ZodType>(parts: T) =>
  z.union([z.string(), parts], { error: (issue) => `must be an array, got ${describeJson(issue.input)}` });

const userMessage = z.strictObject({
  role: z.literal('user'),
  content: contentOf(
    z.array(contentPartSchema).min(1, { error: 'must not be empty; send at least one content part' }),
  ),
  name: z.unknown().optional(),
});

/** System and developer messages are checked for shape, then dropped (see parseChatCompletionRequest). */
const ignoredMessage = z.strictObject({
  role: z.literal(['system', 'developer']),
  content: contentOf(
    z.array(z.looseObject({ type: z.literal('text', { error: 'must be "text" in a system message' }) })),
  ),
  name: z.unknown().optional(),
});

function roleProblem(role: unknown): string {
  if (role === undefined || role === null) return 'is required: user (or system, which is ignored)';
  if (typeof role !== 'string') return `must be a string, got ${describeJson(role)}`;
  if (role === 'assistant' || role === 'tool' || role === 'function') {
    return 'multi-turn conversations are not supported by ImageBind-LLM; send one user message';
  }
  return `${quoted(role)} is not a chat role; use user (system messages are ignored)`;
}

const messageSchema = z.discriminatedUnion('role', [userMessage, ignoredMessage], {
  error: (issue) =>
    issue.code === 'invalid_union' ? roleProblem((issue.input as { role?: unknown }).role) : undefined,
});

const chatBodySchema = perModel((modelId: string) =>
  z.strictObject({
    model: servedModel(modelId),
    messages: z
      .array(messageSchema, required('an array with one user message holding the instruction and inputs'))
      .min(1, { error: 'must not be empty; send one user message with the instruction and inputs' }),
    stream: z.boolean().nullish(),
    stream_options: z.strictObject({ include_usage: z.boolean().nullish() }).nullish(),
    max_tokens: numberIn(GENERATION_LIMITS.maxNewTokens).nullish(),
    max_completion_tokens: numberIn(GENERATION_LIMITS.maxNewTokens).nullish(),
    // The OpenAI ranges; the model's own defaults (temperature 0.1, top_p 0.75) apply when unset.
    temperature: numberIn(GENERATION_LIMITS.temperature).nullish(),
    top_p: numberIn(GENERATION_LIMITS.topP).nullish(),
    seed: numberIn(GENERATION_LIMITS.seed).nullish(),
    n: z
      .literal(1, {
        error: ({ input }) =>
          `only one choice per request is supported; omit n or send 1 (got ${typeof input === 'number' ? String(input) : describeJson(input)})`,
      })
      .nullish(),
    stop: offOnly(
      z.tuple([]),
      'stop sequences are not supported; the answer ends at the end-of-sequence token or max_tokens',
    ),
    imagebind: z
      .strictObject({
        input: z.string().nullish(),
        // Ranges are the official sliders (MODEL_SPEC §1.3); unset fields keep the server defaults.
        cache: z
          .strictObject({
            enabled: z.boolean().nullish(),
            size: numberIn(CACHE_LIMITS.size).nullish(),
            temperature: numberIn(CACHE_LIMITS.temperature).nullish(),
            weight: numberIn(CACHE_LIMITS.weight).nullish(),
          })
          .nullish(),
      })
      .nullish(),
    // Bookkeeping fields OpenAI clients send; they change nothing about the answer.
    user: z.unknown().optional(),
    metadata: z.unknown().optional(),
    ...UNSUPPORTED,
  }),
);

type ChatBody = z.output<ReturnType<typeof chatBodySchema>>;

interface UserTurn {
  readonly inputs: gatewayV1.MultimodalInput[];
  readonly inputPaths: string[];
  /** Instruction text of the user messages, and where each piece came from. */
  readonly texts: { readonly text: string; readonly path: string; readonly message: number }[];
  lastUser: number;
}

function readMessages(messages: ChatBody['messages'], policy: MediaPolicy): UserTurn {
  const budget = new PartBudget(policy.limits);
  const turn: UserTurn = { inputs: [], inputPaths: [], texts: [], lastUser: -1 };
  messages.forEach((message, index) => {
    if (message.role !== 'user') return;
    turn.lastUser = index;
    const contentPath = at(at('messages', index), 'content');
    if (typeof message.content === 'string') {
      budget.countPart(contentPath);
      turn.texts.push({ text: message.content, path: contentPath, message: index });
      return;
    }
    message.content.forEach((part, i) => {
      const partPath = at(contentPath, i);
      const parsed = parseContentPart(part, partPath, policy, budget, false);
      if (parsed.kind === 'input') {
        turn.inputs.push(parsed.input);
        turn.inputPaths.push(partPath);
      } else {
        turn.texts.push({ text: parsed.text, path: partPath, message: index });
      }
    });
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
  const chat = parseJson(chatBodySchema(options.modelId), body);
  const stream = chat.stream ?? false;
  if (chat.stream_options !== undefined && chat.stream_options !== null && !stream) {
    throw invalidAt('stream_options', 'is only allowed with stream: true');
  }
  const legacy = chat.max_tokens ?? undefined;
  const current = chat.max_completion_tokens ?? undefined;
  if (legacy !== undefined && current !== undefined && legacy !== current) {
    throw invalidAt('max_completion_tokens', `conflicts with max_tokens (${legacy}); send only one of them`);
  }
  const maxNewTokens = current ?? legacy;

  const turn = readMessages(chat.messages, options);
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

  const request: gatewayV1.GenerateRequest = {
    inputs: turn.inputs,
    instruction,
    input: chat.imagebind?.input ?? '',
  };
  const cache = chat.imagebind?.cache;
  if (cache !== undefined && cache !== null) request.cache = present(cache);
  const sampling = present({ temperature: chat.temperature, topP: chat.top_p, seed: chat.seed });
  if (Object.keys(sampling).length > 0) request.sampling = sampling;
  if (maxNewTokens !== undefined) request.stopping = { maxNewTokens };
  const includeUsage = chat.stream_options?.include_usage ?? false;
  return { request, stream, includeUsage, model: chat.model, inputPaths: turn.inputPaths };
}
