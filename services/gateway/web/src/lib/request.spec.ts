import { describe, expect, it } from 'vitest';
import { formatBytes, formatClock, formatMs, formatRate, shortList } from './format';
import { chatBody, embeddingsBody, inputIndexOfError, searchBody, type WireInput } from './request';

const inputs: WireInput[] = [
  { modality: 'image', weight: 1, base64: 'AAAA', mediaType: 'image/jpeg' },
  { modality: 'audio', weight: 0.5, base64: 'BBBB', format: 'wav' },
  { modality: 'text', weight: 0.25, text: 'a dog' },
  { modality: 'video', weight: 1, base64: 'CCCC', mediaType: 'video/mp4' },
  { modality: 'point_cloud', weight: 0.75, base64: 'DDDD', format: 'ply' },
];

const cache = { enabled: true, size: 10, temperature: 20, weight: 0.5 };

describe('request bodies', () => {
  it('builds a streamed chat completion with the instruction first and every input weighted', () => {
    const body = chatBody('imagebind-llm', inputs, {
      instruction: 'Describe it.',
      inputText: 'context',
      maxTokens: 512,
      temperature: 0.7,
      topP: 0.75,
      cache,
    });
    expect(body).toEqual({
      model: 'imagebind-llm',
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 512,
      temperature: 0.7,
      top_p: 0.75,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Describe it.' },
            { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,AAAA' }, weight: 1 },
            { type: 'input_audio', input_audio: { data: 'BBBB', format: 'wav' }, weight: 0.5 },
            { type: 'text', text: 'a dog', imagebind_modality: true, weight: 0.25 },
            { type: 'video_url', video_url: { url: 'data:video/mp4;base64,CCCC' }, weight: 1 },
            { type: 'input_point_cloud', input_point_cloud: { data: 'DDDD', format: 'ply' }, weight: 0.75 },
          ],
        },
      ],
      imagebind: { input: 'context', cache },
    });
  });

  it('sends embeddings and search inputs as plain parts (text is always an input there)', () => {
    const parts = (embeddingsBody('m', inputs) as { imagebind_inputs: object[] }).imagebind_inputs;
    expect(parts[2]).toEqual({ type: 'text', text: 'a dog', weight: 0.25 });
    expect(parts).toHaveLength(5);
    expect(searchBody('m', inputs.slice(0, 1), 7)).toEqual({
      model: 'm',
      inputs: [{ type: 'image_url', image_url: { url: 'data:image/jpeg;base64,AAAA' }, weight: 1 }],
      k: 7,
    });
  });
});

describe('which input an error is about', () => {
  it('reads chat content paths (part 0 is the instruction)', () => {
    expect(inputIndexOfError('messages[0].content[1].image_url.url', '')).toBe(0);
    expect(inputIndexOfError('messages[0].content[3]', '')).toBe(2);
    expect(inputIndexOfError('messages[0].content[0]', '')).toBeUndefined();
  });

  it('reads imagebind_inputs and the gateway inputs numbering, from param or the message', () => {
    expect(inputIndexOfError('imagebind_inputs[2].weight', '')).toBe(2);
    expect(inputIndexOfError(null, 'inputs[1]: the image could not be decoded')).toBe(1);
    expect(inputIndexOfError(null, 'messages[0].content[2].input_audio.data: is not valid base64')).toBe(1);
    expect(inputIndexOfError('max_tokens', 'max_tokens: must be at most 512')).toBeUndefined();
    expect(inputIndexOfError(null, 'the decoder is overloaded')).toBeUndefined();
  });
});

describe('formatting', () => {
  it('formats sizes, times and rates for people', () => {
    expect(formatBytes(0)).toBe('0 bytes');
    expect(formatBytes(1)).toBe('1 byte');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(2 * 1024 * 1024)).toBe('2 MB');
    expect(formatBytes(1530044)).toBe('1.5 MB');
    expect(formatMs(12.4)).toBe('12 ms');
    expect(formatMs(2345)).toBe('2.35 s');
    expect(formatMs(undefined)).toBe('—');
    expect(formatRate(299.96)).toBe('300.0');
    expect(formatClock(65.9)).toBe('1:05');
    expect(shortList(['a', 'b', 'c'], 2)).toBe('a, b, …');
  });
});
