import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { LlamaTokenizer } from './llama-tokenizer';

/**
 * The Alpaca-style templates of `format_prompt` (MODEL_SPEC §5.9), used unchanged in training, so
 * any byte of difference moves the model off-distribution. No trailing space after "### Response:".
 */
const NO_INPUT_HEAD =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n';
const WITH_INPUT_HEAD =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n';
const INPUT_HEADER = '\n\n### Input:\n';
const RESPONSE_HEADER = '\n\n### Response:';

/** The official context window (`max_seq_len`, MODEL_SPEC §5.7). */
export const DEFAULT_MAX_SEQ_LEN = 512;

/**
 * The prompt text for an instruction and optional input. `input` of undefined, null or "" selects
 * the no-input template, as the official `format_prompt` treats None and "" alike.
 * Substitution is plain concatenation: braces or `$&` in user text stay literal (String.replace
 * or str.format would interpret them).
 */
export function formatPrompt(instruction: string, input?: string | null): string {
  if (input === undefined || input === null || input === '') {
    return NO_INPUT_HEAD + instruction + RESPONSE_HEADER;
  }
  return WITH_INPUT_HEAD + instruction + INPUT_HEADER + input + RESPONSE_HEADER;
}

export interface PromptIdsOptions {
  /** Context window in tokens, prompt and answer together. Default 512. */
  readonly maxSeqLen?: number;
  /** New tokens the caller asks for; only reported in the error (the answer is cut, not refused). */
  readonly maxNewTokens?: number;
}

/** The parts of the tokenizer prompt building reads. */
export type PromptTokenizer = Pick<LlamaTokenizer, 'encode' | 'bosId'>;

/**
 * `[BOS] + encode(formatPrompt(instruction, input))`, the decoder's prompt (MODEL_SPEC §5.7 step 2).
 *
 * Throws DomainError CONTEXT_OVERFLOW unless the prompt is shorter than `maxSeqLen`. The official
 * code crashes above 512 tokens and silently answers "" at exactly 512 (MODEL_SPEC B16, fixed
 * knowingly): we require room for at least one generated token. A prompt that fits but leaves
 * fewer than `maxNewTokens` free is accepted; generation then stops at the window (see
 * `newTokenBudget`), as officially.
 */
export function buildPromptIds(
  tokenizer: PromptTokenizer,
  instruction: string,
  input?: string | null,
  options: PromptIdsOptions = {},
): number[] {
  const maxSeqLen = options.maxSeqLen ?? DEFAULT_MAX_SEQ_LEN;
  if (!Number.isInteger(maxSeqLen) || maxSeqLen < 2) {
    throw new RangeError(`maxSeqLen must be an integer of at least 2, got ${maxSeqLen}`);
  }
  const { maxNewTokens } = options;
  if (maxNewTokens !== undefined && (!Number.isInteger(maxNewTokens) || maxNewTokens < 1)) {
    throw DomainError.invalidInput(
      `maxNewTokens must be a positive integer, got ${maxNewTokens}`,
      'maxNewTokens',
    );
  }
  const ids = tokenizer.encode(formatPrompt(instruction, input), { bos: true });
  const limit = maxSeqLen - 1;
  if (ids.length > limit) {
    const asked = maxNewTokens === undefined ? '' : ` (${maxNewTokens} new tokens were requested)`;
    throw new DomainError(
      ErrorCode.ContextOverflow,
      `the prompt is ${ids.length} tokens (template, instruction and input, with BOS) but at most ${limit} fit ` +
        `the ${maxSeqLen}-token context while leaving room for an answer${asked}; shorten the instruction or input`,
      {
        promptTokens: ids.length,
        maxPromptTokens: limit,
        maxSeqLen,
        ...(maxNewTokens === undefined ? {} : { maxNewTokens }),
      },
    );
  }
  return ids;
}

/**
 * How many tokens can be generated after a prompt: `min(maxNewTokens, maxSeqLen − promptLength)`,
 * the official `total_len = min(max_seq_len, max_gen_len + prompt_len)` (MODEL_SPEC §5.7 step 3).
 */
export function newTokenBudget(
  promptLength: number,
  maxNewTokens: number,
  maxSeqLen: number = DEFAULT_MAX_SEQ_LEN,
): number {
  return Math.max(0, Math.min(maxNewTokens, maxSeqLen - promptLength));
}
