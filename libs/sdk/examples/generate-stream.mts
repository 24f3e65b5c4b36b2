// Streams an answer about an image and an audio clip, token by token (the official demo.py
// request: both inputs with weight 1). Ctrl-C cancels the generation on the server.
//
// Run from the repository root (the examples are ES modules compiled by tsc; the build also
// compiles the SDK they import):
//   npx tsc -b libs/sdk/examples/tsconfig.json
//   node libs/sdk/examples/dist/generate-stream.mjs <host:port> <image> <audio> ["question"]
// e.g. node libs/sdk/examples/dist/generate-stream.mjs localhost:50051 girl.jpg girl_bgm.wav
// Set IBLLM_API_KEY when the gateway requires a key.
import { pathToFileURL } from 'node:url';
import { audio, image, ImageBindClient, isImageBindError } from '@imagebind-llm/client';

export async function main(
  args: readonly string[],
  write: (text: string) => void = (text) => process.stdout.write(text),
  apiKey: string | undefined = process.env['IBLLM_API_KEY'],
): Promise<void> {
  const [address, imagePath, audioPath, question = 'Describe the scene and the music.'] = args;
  if (address === undefined || imagePath === undefined || audioPath === undefined) {
    throw new Error('usage: generate-stream.mjs <host:port> <image> <audio> ["question"]');
  }
  const client = new ImageBindClient({ addresses: address, ...(apiKey === undefined ? {} : { apiKey }) });
  const controller = new AbortController();
  const onInterrupt = (): void => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onInterrupt);
  try {
    const answer = client.generate(
      { inputs: [image(imagePath, 1), audio(audioPath, 1)], instruction: question, maxNewTokens: 256 },
      { signal: controller.signal },
    );
    for await (const chunk of answer) {
      write(chunk.text);
      if (chunk.usage !== undefined) {
        write(
          `\n[${chunk.finishReason ?? 'done'}: ${chunk.usage.completionTokens} tokens, ` +
            `${chunk.usage.tokensPerSecond.toFixed(1)} tokens/s, request ${answer.requestId}]\n`,
        );
      }
    }
  } finally {
    process.off('SIGINT', onInterrupt);
    client.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    // ImageBindError messages carry the status, the offending field and the request id.
    console.error(isImageBindError(error) ? `\n${error.message}` : String(error));
    process.exitCode = 1;
  });
}
