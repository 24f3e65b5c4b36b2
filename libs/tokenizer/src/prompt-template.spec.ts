import { readFileSync } from 'node:fs';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { LlamaTokenizer } from './llama-tokenizer';
import { buildPromptIds, formatPrompt, newTokenBudget, type PromptTokenizer } from './prompt-template';

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

/** A tokenizer whose prompt length is whatever the test needs: one id per character. */
const charTokenizer: PromptTokenizer = {
  bosId: 1,
  encode: (text, options = {}) => [...(options.bos === true ? [1] : []), ...Array.from(text, () => 7)],
};
const NO_INPUT_TEMPLATE_CHARS = formatPrompt('').length;

function captureError(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

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

describe('buildPromptIds', () => {
  it('is [BOS] + encode(prompt), matching the official prompt ids', () => {
    for (const c of promptCases) {
      expect(buildPromptIds(tokenizer, c.instruction, c.input, { maxNewTokens: 24 }), c.id).toEqual(
        c.prompt_ids,
      );
    }
  });

  it('accepts up to maxSeqLen − 1 tokens and refuses maxSeqLen (MODEL_SPEC B16)', () => {
    const fits = 'x'.repeat(511 - 1 - NO_INPUT_TEMPLATE_CHARS);
    expect(buildPromptIds(charTokenizer, fits)).toHaveLength(511);
    const error = captureError(() =>
      buildPromptIds(charTokenizer, `${fits}x`, undefined, { maxNewTokens: 64 }),
    );
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({
      code: ErrorCode.ContextOverflow,
      details: { promptTokens: 512, maxPromptTokens: 511, maxSeqLen: 512, maxNewTokens: 64 },
    });
    expect((error as DomainError).message).toBe(
      'the prompt is 512 tokens (template, instruction and input, with BOS) but at most 511 fit the 512-token ' +
        'context while leaving room for an answer (64 new tokens were requested); shorten the instruction or input',
    );
  });

  it('honours a custom maxSeqLen', () => {
    expect(() =>
      buildPromptIds(charTokenizer, '', undefined, { maxSeqLen: NO_INPUT_TEMPLATE_CHARS + 1 }),
    ).toThrow(DomainError);
    expect(
      buildPromptIds(charTokenizer, '', undefined, { maxSeqLen: NO_INPUT_TEMPLATE_CHARS + 2 }),
    ).toHaveLength(NO_INPUT_TEMPLATE_CHARS + 1);
  });

  it('reports the real token count of an overlong prompt from the real tokenizer', () => {
    const input = 'lorem ipsum dolor sit amet '.repeat(200);
    const expected = tokenizer.encode(formatPrompt('Summarise.', input), { bos: true }).length;
    expect(expected).toBeGreaterThan(512);
    expect(() => buildPromptIds(tokenizer, 'Summarise.', input)).toThrow(
      new RegExp(`^the prompt is ${expected} tokens .* at most 511 fit the 512-token context`),
    );
  });

  it('rejects a nonsensical maxNewTokens or maxSeqLen', () => {
    const error = captureError(() => buildPromptIds(charTokenizer, 'x', undefined, { maxNewTokens: 0 }));
    expect(error).toMatchObject({ code: ErrorCode.InvalidInput, details: { field: 'maxNewTokens' } });
    expect(() => buildPromptIds(charTokenizer, 'x', undefined, { maxNewTokens: 1.5 })).toThrow(DomainError);
    expect(() => buildPromptIds(charTokenizer, 'x', undefined, { maxSeqLen: 1 })).toThrow(RangeError);
  });
});

describe('newTokenBudget', () => {
  it('is min(maxNewTokens, maxSeqLen − promptLength), never negative', () => {
    expect(newTokenBudget(53, 24)).toBe(24);
    expect(newTokenBudget(500, 24)).toBe(12);
    expect(newTokenBudget(511, 24)).toBe(1);
    expect(newTokenBudget(600, 24)).toBe(0);
    expect(newTokenBudget(10, 100, 64)).toBe(54);
  });
});
