#!/usr/bin/env node
// `npm run demo`: the main job on the embedded default. It builds a model repository from
// official-format checkpoints (the tiny random-weight golden set in ../shared/golden/tiny-a, or —
// without it — the project's own `ibllm models demo` checkpoints), starts the whole platform in one
// process (`ibllm serve --standalone`: encoders, retriever on the embedded vector store, bind,
// decoder, gateway), asks the official demo question about image + audio through the client SDK
// over gRPC, streams the answer, asks again through the OpenAI-compatible REST API with SSE, and
// shuts the server down (SIGTERM → drain → exit 0). The weights are random, so the answer is
// meaningless text by design; every number in it matches the official PyTorch implementation.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { audio, image, ImageBindClient, text } from '@imagebind-llm/client';

const root = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: {
    golden: { type: 'string', default: resolve(root, '..', 'shared', 'golden', 'tiny-a') },
    models: { type: 'string' },
    rebuild: { type: 'boolean', default: false },
  },
});
const g = values.golden;
const cli = join(root, 'tools', 'cli', 'bin', 'ibllm.js');
const say = (line) => process.stderr.write(`${line}\n`);
const run = (args) => {
  const r = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

const golden = existsSync(join(g, 'manifest.json'));
const repo = values.models ?? join(root, '.models', golden ? 'golden-tiny-a' : 'demo');
if (values.rebuild || !existsSync(join(repo, 'llama-decoder'))) {
  say(`building the model repository in ${repo} ...`);
  if (golden) {
    run([
      'models',
      'build',
      '--imagebind',
      join(g, 'imagebind_w3D.pth'),
      '--imagebind-config',
      join(g, 'imagebind_config.json'),
      '--llama-dir',
      join(g, 'llama'),
      '--adapter',
      join(g, '7B.pth'),
      '--knn',
      join(g, 'knn.index'),
      '--out',
      repo,
    ]);
  } else {
    say(`(no golden checkpoints in ${g}: using the project's own random-weight demo checkpoints)`);
    run(['models', 'demo', '--out', repo]);
  }
}

say('starting the platform in one process: ibllm serve --standalone (embedded vector store) ...');
const server = spawn(
  process.execPath,
  [cli, 'serve', '--standalone', '--models', repo, '--grpc-port', '0', '--http-port', '0'],
  { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, LOG_LEVEL: 'info' } },
);
const ready = await new Promise((resolveReady, reject) => {
  server.on('exit', (code) => reject(new Error(`the server exited with ${code} before it was ready`)));
  createInterface({ input: server.stdout }).on('line', (line) => {
    try {
      const event = JSON.parse(line);
      if (event.event === 'service.ready') resolveReady(event);
    } catch {
      // not a log line
    }
  });
});
const grpc = `127.0.0.1:${ready.grpcPort}`;
const http = `http://127.0.0.1:${ready.httpPort}`;
say(`ready: gRPC ${grpc}, HTTP ${http} (mode ${ready.mode})\n`);

const client = new ImageBindClient({ addresses: [grpc] });
try {
  const question = golden
    ? "Guess the girl's mood based on the background music and explain the reason?"
    : 'Describe the scene.';
  const inputs = golden
    ? [image(join(g, 'inputs', 'girl.jpg')), audio(join(g, 'inputs', 'girl_bgm.wav'))]
    : [text('A dog playing on the beach.')];
  say(`Q: ${question}`);
  say(
    `   inputs: ${golden ? 'girl.jpg + girl_bgm.wav' : 'text "A dog playing on the beach."'}, cache on, greedy, 24 tokens`,
  );
  say('A (gRPC, streamed; random demo weights: meaningless text, official numerics):');
  const stream = client.generate({
    inputs,
    instruction: question,
    sampling: { temperature: 0 },
    maxNewTokens: 24,
  });
  let usage;
  let answer = '';
  for await (const chunk of stream) {
    answer += chunk.text;
    process.stdout.write(chunk.text);
    if (chunk.usage !== undefined) usage = chunk.usage;
  }
  process.stdout.write('\n');
  if (usage !== undefined) {
    say(
      `[${usage.completionTokens} tokens, first token after ${usage.timeToFirstTokenMs.toFixed(0)} ms, ${usage.tokensPerSecond.toFixed(0)} tok/s]`,
    );
  }

  const body = {
    model: 'imagebind-llm',
    stream: true,
    temperature: 0,
    max_tokens: 24,
    messages: [
      {
        role: 'user',
        content: golden
          ? [
              { type: 'text', text: question },
              {
                type: 'image_url',
                image_url: {
                  url: `data:image/jpeg;base64,${readFileSync(join(g, 'inputs', 'girl.jpg')).toString('base64')}`,
                },
              },
              {
                type: 'input_audio',
                input_audio: {
                  data: readFileSync(join(g, 'inputs', 'girl_bgm.wav')).toString('base64'),
                  format: 'wav',
                },
              },
            ]
          : [
              { type: 'text', text: question },
              { type: 'text', text: 'A dog playing on the beach.', imagebind_modality: true },
            ],
      },
    ],
  };
  const res = await fetch(`${http}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  let sse = '';
  for (const event of (await res.text()).split('\n\n')) {
    if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
    sse += JSON.parse(event.slice(6)).choices[0]?.delta?.content ?? '';
  }
  say(
    `A (REST /v1/chat/completions, SSE, HTTP ${res.status}): same answer as gRPC: ${sse === answer ? 'yes' : 'NO'}`,
  );
  process.stdout.write(`${sse}\n`);
  if (sse !== answer) process.exitCode = 1;
} finally {
  client.close();
  server.kill('SIGTERM');
  const code = await new Promise((done) => server.on('exit', (c) => done(c)));
  say(`server stopped (exit ${code})`);
}
