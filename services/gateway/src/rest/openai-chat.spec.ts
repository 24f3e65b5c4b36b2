import { ErrorCode } from '@imagebind-llm/errors';
import { commonV1, type gatewayV1 } from '@imagebind-llm/proto';
import { describe, expect, it } from 'vitest';
import { checkBodySize, type RestLimits } from './content-parts';
import { parseChatCompletionRequest, type ChatParseOptions } from './openai-chat';
import { domainErrorOf } from '@imagebind-llm/testing';

const M = commonV1.Modality;
const limits: RestLimits = { maxParts: 6, maxPartBytes: 64, maxBodyBytes: 100 };
const options: ChatParseOptions = {
  modelId: 'imagebind-llm-7b',
  limits,
  allowedHosts: ['media.example.com'],
};

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
const WAV = Buffer.from('RIFF....WAVEfmt ');
const b64 = (bytes: Buffer): string => bytes.toString('base64');
const imagePart = { type: 'image_url', image_url: { url: `data:image/png;base64,${b64(PNG)}` } };
const question = { type: 'text', text: 'What is shown here?' };

function body(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: 'imagebind-llm-7b',
    messages: [{ role: 'user', content: [imagePart, question] }],
    ...overrides,
  };
}

function userContent(...parts: unknown[]): Record<string, unknown> {
  return body({ messages: [{ role: 'user', content: parts }] });
}

describe('parseChatCompletionRequest', () => {
  it('turns a realistic multimodal chat body into the exact Generate request', () => {
    const parsed = parseChatCompletionRequest(
      {
        model: 'imagebind-llm-7b',
        messages: [
          { role: 'system', content: 'You are a helpful assistant.' },
          {
            role: 'user',
            content: [
              {
                type: 'image_url',
                image_url: { url: `data:image/png;base64,${b64(PNG)}`, detail: 'high' },
                weight: 0.7,
              },
              { type: 'input_audio', input_audio: { data: b64(WAV), format: 'wav' } },
              { type: 'text', text: 'a rainy street', imagebind_modality: true, weight: 0.5 },
              { type: 'text', text: 'Describe the scene.' },
              { type: 'text', text: 'Mention the sound.' },
            ],
          },
        ],
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: 128,
        temperature: 0.2,
        top_p: 0.9,
        seed: 42,
        n: 1,
        stop: null,
        user: 'end-user-7',
        imagebind: {
          input: 'Recorded in Paris.',
          cache: { enabled: true, size: 5, temperature: 10, weight: 0.25 },
        },
      },
      options,
    );
    const expected: gatewayV1.GenerateRequest = {
      inputs: [
        {
          modality: M.MODALITY_IMAGE,
          weight: 0.7,
          source: { $case: 'content', value: PNG },
          mediaType: 'image/png',
        },
        { modality: M.MODALITY_AUDIO, source: { $case: 'content', value: WAV }, mediaType: 'audio/wav' },
        {
          modality: M.MODALITY_TEXT,
          weight: 0.5,
          source: { $case: 'text', value: 'a rainy street' },
          mediaType: '',
        },
      ],
      instruction: 'Describe the scene.\nMention the sound.',
      input: 'Recorded in Paris.',
      cache: { enabled: true, size: 5, temperature: 10, weight: 0.25 },
      sampling: { temperature: 0.2, topP: 0.9, seed: 42 },
      stopping: { maxNewTokens: 128 },
    };
    expect(parsed).toStrictEqual({
      request: expected,
      stream: true,
      includeUsage: true,
      model: 'imagebind-llm-7b',
      // Where each input came from, for errors the services report about inputs[i].
      inputPaths: ['messages[1].content[0]', 'messages[1].content[1]', 'messages[1].content[2]'],
    });
  });

  it('leaves every knob unset when the client sends none, so the server defaults apply', () => {
    const parsed = parseChatCompletionRequest(
      body({ messages: [{ role: 'user', content: [imagePart, { type: 'text', text: 'Hi?' }] }] }),
      options,
    );
    expect(parsed.stream).toBe(false);
    expect(parsed.includeUsage).toBe(false);
    expect(parsed.request).toStrictEqual({
      inputs: [
        { modality: M.MODALITY_IMAGE, source: { $case: 'content', value: PNG }, mediaType: 'image/png' },
      ],
      instruction: 'Hi?',
      input: '',
    });
  });

  it('takes inputs from earlier user messages and the instruction from the last one', () => {
    const parsed = parseChatCompletionRequest(
      body({
        messages: [
          { role: 'user', content: [imagePart] },
          { role: 'user', content: 'What breed is this dog?' },
        ],
      }),
      options,
    );
    expect(parsed.request.instruction).toBe('What breed is this dog?');
    expect(parsed.request.inputs.map((i) => i.modality)).toEqual([M.MODALITY_IMAGE]);
  });

  it('passes allow-listed https media on as URIs for the fetcher, with video and point clouds', () => {
    const cloud = Buffer.from('0 0 0\n1 1 1\n');
    const parsed = parseChatCompletionRequest(
      userContent(
        { type: 'image_url', image_url: { url: 'https://MEDIA.example.com/cat.jpg' } },
        { type: 'video_url', video_url: { url: 'https://media.example.com/clip.mp4' }, weight: 2 },
        { type: 'input_point_cloud', input_point_cloud: { data: b64(cloud), format: 'txt' } },
        question,
      ),
      options,
    );
    expect(parsed.request.inputs).toStrictEqual([
      {
        modality: M.MODALITY_IMAGE,
        source: { $case: 'uri', value: 'https://media.example.com/cat.jpg' },
        mediaType: '',
      },
      {
        modality: M.MODALITY_VIDEO,
        weight: 2,
        source: { $case: 'uri', value: 'https://media.example.com/clip.mp4' },
        mediaType: '',
      },
      {
        modality: M.MODALITY_POINT_CLOUD,
        source: { $case: 'content', value: cloud },
        mediaType: 'point_cloud.xyz',
      },
    ]);
  });

  it('accepts the "off" values SDKs send by default for features the model lacks', () => {
    const parsed = parseChatCompletionRequest(
      body({
        frequency_penalty: 0,
        presence_penalty: 0,
        logit_bias: {},
        logprobs: false,
        tools: [],
        tool_choice: 'none',
        parallel_tool_calls: true,
        response_format: { type: 'text' },
        modalities: ['text'],
        stop: [],
        max_completion_tokens: 64,
      }),
      options,
    );
    expect(parsed.request.stopping).toStrictEqual({ maxNewTokens: 64 });
  });

  it('answers NOT_FOUND naming the served model for any other model id', () => {
    const e = domainErrorOf(() => parseChatCompletionRequest(body({ model: 'gpt-4o' }), options));
    expect(e.code).toBe(ErrorCode.NotFound);
    expect(e.details.field).toBe('model');
    expect(e.message).toContain('"gpt-4o" is not served here; use "imagebind-llm-7b"');
  });

  const longData = `data:image/png;base64,${'A'.repeat(88)}`; // 66 decoded bytes > 64
  it.each([
    ['a body that is not an object', [], 'request body: must be a JSON object, got an array'],
    ['no model', { messages: [] }, 'model: is required'],
    ['an unknown top-level field', body({ temprature: 1 }), 'temprature: unknown field'],
    ['no messages', body({ messages: undefined }), 'messages: is required'],
    ['an empty message list', body({ messages: [] }), 'messages: must not be empty'],
    [
      'an earlier assistant turn',
      body({
        messages: [
          { role: 'user', content: [imagePart, question] },
          { role: 'assistant', content: 'A cat.' },
          { role: 'user', content: 'And its colour?' },
        ],
      }),
      'messages[1].role: multi-turn conversations are not supported by ImageBind-LLM; send one user message',
    ],
    [
      'an unknown role',
      body({ messages: [{ role: 'narrator', content: 'x' }] }),
      'messages[0].role: "narrator"',
    ],
    [
      'only a system message',
      body({ messages: [{ role: 'system', content: 'Be nice.' }] }),
      'messages: has no user message',
    ],
    ['a part without type', userContent({ text: 'x' }), 'messages[0].content[0].type: is required'],
    [
      'an unsupported part type',
      userContent({ type: 'file', file: {} }),
      'messages[0].content[0].type: content part type "file"',
    ],
    ['no instruction text', userContent(imagePart), 'messages[0].content: has no instruction text'],
    ['no inputs', userContent(question), 'messages: ImageBind-LLM answers about inputs'],
    [
      'instruction text in an earlier user message',
      body({
        messages: [
          { role: 'user', content: 'first' },
          { role: 'user', content: [imagePart, question] },
        ],
      }),
      'messages[0].content: only the last user message may hold instruction text',
    ],
    [
      'a weight on instruction text',
      userContent(imagePart, { type: 'text', text: 'Why?', weight: 2 }),
      'messages[0].content[1].weight: only inputs carry a weight',
    ],
    [
      'a zero weight',
      userContent({ ...imagePart, weight: 0 }, question),
      'messages[0].content[0].weight: must be a positive number (unset means 1), got 0',
    ],
    [
      'an empty TEXT input',
      userContent(imagePart, { type: 'text', text: '  ', imagebind_modality: true }, question),
      'messages[0].content[1].text: must not be empty for a TEXT input',
    ],
    [
      'a data URL of the wrong media type',
      userContent({ type: 'image_url', image_url: { url: 'data:text/plain;base64,aGk=' } }, question),
      "messages[0].content[0].image_url.url: the data: URL's media type must be image/*, got text/plain",
    ],
    [
      'a data URL that is not base64',
      userContent({ type: 'image_url', image_url: { url: 'data:image/png,rawbytes' } }, question),
      'messages[0].content[0].image_url.url: data: URLs must be base64-encoded',
    ],
    [
      'corrupt base64',
      userContent({ type: 'image_url', image_url: { url: 'data:image/png;base64,ab$d' } }, question),
      'messages[0].content[0].image_url.url: is not valid base64',
    ],
    [
      'an image_url given as a bare string',
      userContent({ type: 'image_url', image_url: 'https://media.example.com/a.png' }, question),
      'messages[0].content[0].image_url: must be a JSON object, got a string',
    ],
    [
      'an unknown detail',
      userContent(
        { type: 'image_url', image_url: { url: 'https://media.example.com/a.png', detail: 'max' } },
        question,
      ),
      'messages[0].content[0].image_url.detail: must be auto, low or high',
    ],
    [
      'an audio format the decoder does not read',
      userContent({ type: 'input_audio', input_audio: { data: 'AAAA', format: 'midi' } }, question),
      'messages[0].content[0].input_audio.format: "midi" is not supported',
    ],
    [
      'audio data sent as a data URL',
      userContent(
        { type: 'input_audio', input_audio: { data: 'data:audio/wav;base64,AAAA', format: 'wav' } },
        question,
      ),
      'messages[0].content[0].input_audio.data: send the bare base64 payload',
    ],
    [
      'a point-cloud format the loader does not read',
      userContent(
        { type: 'input_point_cloud', input_point_cloud: { data: 'AAAA', format: 'las' } },
        question,
      ),
      'messages[0].content[0].input_point_cloud.format: "las" is not supported',
    ],
    ['n > 1', body({ n: 2 }), 'n: only one choice per request is supported'],
    ['stop sequences', body({ stop: ['\n'] }), 'stop: stop sequences are not supported'],
    ['tools', body({ tools: [{ type: 'function' }] }), 'tools: tool calling is not supported'],
    [
      'a JSON response format',
      body({ response_format: { type: 'json_object' } }),
      'response_format: structured output',
    ],
    ['a penalty', body({ presence_penalty: 0.5 }), 'presence_penalty: repetition penalties are not part'],
    [
      'max_tokens over the context',
      body({ max_tokens: 513 }),
      'max_tokens: must be an integer in [1, 512], got 513',
    ],
    [
      'fractional max_tokens',
      body({ max_tokens: 1.5 }),
      'max_tokens: must be an integer in [1, 512], got 1.5',
    ],
    [
      'conflicting token limits',
      body({ max_tokens: 10, max_completion_tokens: 20 }),
      'max_completion_tokens: conflicts',
    ],
    [
      'a string temperature',
      body({ temperature: '0.5' }),
      'temperature: must be a number in [0, 2], got a string',
    ],
    ['top_p above 1', body({ top_p: 1.5 }), 'top_p: must be a number in [0, 1], got 1.5'],
    ['a negative seed', body({ seed: -1 }), 'seed: must be an integer in [0, 9007199254740991], got -1'],
    ['a non-boolean stream', body({ stream: 'yes' }), 'stream: must be true or false, got a string'],
    [
      'stream_options without streaming',
      body({ stream_options: { include_usage: true } }),
      'stream_options: is only allowed',
    ],
    ['a typo in the extension', body({ imagebind: { cahce: {} } }), 'imagebind.cahce: unknown field'],
    [
      'a cache size out of range',
      body({ imagebind: { cache: { size: 0 } } }),
      'imagebind.cache.size: must be an integer in [1, 100], got 0',
    ],
    [
      'a cache weight out of range',
      body({ imagebind: { cache: { weight: 2 } } }),
      'imagebind.cache.weight: must be a number in [0, 1], got 2',
    ],
    [
      'a non-string extension input',
      body({ imagebind: { input: 3 } }),
      'imagebind.input: must be a string, got a number',
    ],
  ])('rejects %s with INVALID_INPUT naming the JSON path', (_name, request, message) => {
    const e = domainErrorOf(() => parseChatCompletionRequest(request, options));
    expect(e.code).toBe(ErrorCode.InvalidInput);
    expect(e.message).toContain(message);
  });

  it('refuses parts past the per-request limit and oversized media with PAYLOAD_TOO_LARGE', () => {
    const many = domainErrorOf(() =>
      parseChatCompletionRequest(
        userContent(imagePart, imagePart, imagePart, imagePart, imagePart, imagePart, question),
        options,
      ),
    );
    expect(many.code).toBe(ErrorCode.PayloadTooLarge);
    expect(many.message).toBe(
      'messages[0].content[6]: more than 6 content parts in one request; split it into several requests',
    );

    const big = domainErrorOf(() =>
      parseChatCompletionRequest(
        userContent({ type: 'image_url', image_url: { url: longData } }, question),
        options,
      ),
    );
    expect(big.code).toBe(ErrorCode.PayloadTooLarge);
    expect(big.message).toContain(
      'messages[0].content[0].image_url.url: 66 decoded bytes exceed the per-part limit of 64',
    );

    // Three parts of 48 bytes each fit the part limit but not the 100-byte total.
    const part48 = { type: 'input_audio', input_audio: { data: 'A'.repeat(64), format: 'wav' } };
    const total = domainErrorOf(() =>
      parseChatCompletionRequest(userContent(part48, part48, part48, question), options),
    );
    expect(total.code).toBe(ErrorCode.PayloadTooLarge);
    expect(total.message).toContain(
      'messages[0].content[2].input_audio.data: the inline media of this request add up',
    );
  });
});

describe('checkBodySize', () => {
  it('passes bodies up to the limit and refuses larger ones with PAYLOAD_TOO_LARGE', () => {
    expect(() => checkBodySize(100, limits)).not.toThrow();
    expect(() => checkBodySize(undefined, limits)).not.toThrow();
    const e = domainErrorOf(() => checkBodySize(101, limits));
    expect(e.code).toBe(ErrorCode.PayloadTooLarge);
    expect(e.message).toContain('request body: 101 bytes exceed the limit of 100');
  });
});
