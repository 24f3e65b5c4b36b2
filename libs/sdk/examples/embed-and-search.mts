// Embeds a text and an image into the shared ImageBind space, compares them, then searches the
// visual cache collection with the text.
//
// Run from the repository root:
//   npx tsc -b libs/sdk/examples/tsconfig.json
//   node libs/sdk/examples/dist/embed-and-search.mjs <host:port> "a text" <image>
// Set IBLLM_API_KEY when the gateway requires a key.
import { pathToFileURL } from 'node:url';
import { image, ImageBindClient, isImageBindError, text } from '@imagebind-llm/client';

export async function main(
  args: readonly string[],
  print: (line: string) => void = console.log,
  apiKey: string | undefined = process.env['IBLLM_API_KEY'],
): Promise<void> {
  const [address, query, imagePath] = args;
  if (address === undefined || query === undefined || imagePath === undefined) {
    throw new Error('usage: embed-and-search.mjs <host:port> "a text" <image>');
  }
  const client = new ImageBindClient({ addresses: address, ...(apiKey === undefined ? {} : { apiKey }) });
  try {
    const { embeddings, fused } = await client.embed({
      inputs: [text(query), image(imagePath)],
      includeFused: true,
    });
    const [t, i] = embeddings;
    if (t === undefined || i === undefined)
      throw new Error('the gateway returned fewer embeddings than inputs');
    print(`embedding size: ${t.vector.length}`);
    // Embeddings come as ImageBind emits them: unit length times the modality's logit scale (text
    // ~14.3, audio 20, image 1), so their dot product is not a cosine until divided by the norms.
    print(`norms: text ${norm(t.vector).toFixed(4)}, image ${norm(i.vector).toFixed(4)}`);
    print(`text-image cosine similarity: ${cosine(t.vector, i.vector).toFixed(4)}`);
    if (fused !== undefined) print(`fused query norm: ${norm(fused).toFixed(4)}`);

    const hits = await client.search({ inputs: [text(query)], k: 5 });
    print(`top ${hits.length} stored items for ${JSON.stringify(query)}:`);
    for (const hit of hits)
      print(`  #${hit.id}  score ${hit.score.toFixed(4)}  ${JSON.stringify(hit.payload)}`);
  } finally {
    client.close();
  }
}

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let k = 0; k < Math.min(a.length, b.length); k++) sum += a[k]! * b[k]!;
  return sum;
}

function norm(a: Float32Array): number {
  return Math.sqrt(dot(a, a));
}

function cosine(a: Float32Array, b: Float32Array): number {
  return dot(a, b) / (norm(a) * norm(b));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(isImageBindError(error) ? error.message : String(error));
    process.exitCode = 1;
  });
}
