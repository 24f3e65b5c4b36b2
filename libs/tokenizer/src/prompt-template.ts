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
