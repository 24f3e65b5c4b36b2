import { readFileSync } from 'node:fs';
import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { LlamaTokenizer } from './llama-tokenizer';
import { formatPrompt } from './prompt-template';

interface ManifestPromptCase {
  readonly id: string;
  readonly instruction: string;
  readonly input: string | null;
  readonly prompt: string;
  readonly prompt_ids: readonly number[];
}

const manifest = JSON.parse(readFileSync(goldenPath('manifest.json'), 'utf8')) as {
  cases: readonly Partial<ManifestPromptCase>[];
};
const promptCases = manifest.cases.filter((c): c is ManifestPromptCase => typeof c.prompt === 'string');
const tokenizer = LlamaTokenizer.fromFile(goldenPath('llama', 'tokenizer.model'));

describe('formatPrompt (MODEL_SPEC §5.9)', () => {
  it('reproduces the official prompts of the golden decode cases', () => {
    expect(promptCases.length).toBeGreaterThanOrEqual(4);
    for (const c of promptCases) {
      expect(formatPrompt(c.instruction, c.input), c.id).toBe(c.prompt);
    }
  });

  it('uses the two templates verbatim, without a trailing space', () => {
    expect(formatPrompt('Describe it.')).toBe(
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.' +
        '\n\n### Instruction:\nDescribe it.\n\n### Response:',
    );
    expect(formatPrompt('Translate.', 'Bonjour')).toBe(
      'Below is an instruction that describes a task, paired with an input that provides further context. ' +
        'Write a response that appropriately completes the request.' +
        '\n\n### Instruction:\nTranslate.\n\n### Input:\nBonjour\n\n### Response:',
    );
  });

  it('selects the no-input template for undefined, null and ""', () => {
    const plain = formatPrompt('x');
    expect(formatPrompt('x', null)).toBe(plain);
    expect(formatPrompt('x', '')).toBe(plain);
    expect(formatPrompt('x', ' ')).toContain('### Input:\n \n\n');
  });

  it('substitutes literally: braces and replacement patterns stay as typed', () => {
    const hostile = "{instruction} {input} $& $1 $$ $` $' {{}} %s";
    expect(formatPrompt(hostile, hostile)).toBe(
      // A replacer function, because a replacement string would itself expand `$&`.
      formatPrompt('A', 'B')
        .replace('\nA\n', () => `\n${hostile}\n`)
        .replace('\nB\n', () => `\n${hostile}\n`),
    );
    expect(formatPrompt(hostile)).toContain(`### Instruction:\n${hostile}\n\n### Response:`);
  });
});

describe('the prompt ids (MODEL_SPEC §5.7 step 2)', () => {
  it('[BOS] + encode(formatPrompt(instruction, input)) are the official prompt ids', () => {
    for (const c of promptCases) {
      expect(tokenizer.encode(formatPrompt(c.instruction, c.input), { bos: true }), c.id).toEqual(
        c.prompt_ids,
      );
    }
  });
});
