import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import type { ModelJson, SourceFile } from '@imagebind-llm/inference';
import { ExternalDataSink } from './onnx/external-data.sink';
import { bytesPerWeight, type WeightFormat } from './onnx/linear-weights';
import { serializeModelChunks, type GraphBuilder, type InitializerSink } from './onnx/onnx-graph';

export const BUILDER_VERSION = '0.1.0';
export const BUILDER = { name: 'imagebind-llm-model-builder', version: BUILDER_VERSION } as const;
const OPSETS = { '': 17, 'com.microsoft': 1 };
/** Above this many weight bytes a graph keeps its weights in `<file>.data` (protobuf caps at 2 GB). */
const EXTERNAL_DATA_THRESHOLD = 1024 * 1024 * 1024;

export type ExternalDataMode = 'auto' | 'always' | 'never';

/** `onBytes` hears of every chunk hashed (a 13 GB checkpoint takes a minute). */
export async function sha256(path: string, onBytes?: (bytes: number) => void): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 8 * 1024 * 1024 })) {
    hash.update(chunk as Buffer);
    onBytes?.((chunk as Buffer).byteLength);
  }
  return hash.digest('hex');
}

export async function source(
  role: string,
  path: string,
  onBytes?: (bytes: number) => void,
): Promise<SourceFile> {
  return { role, file: basename(path), sha256: await sha256(path, onBytes), bytes: statSync(path).size };
}

export function weightBytes(entries: Iterable<readonly number[]>, format: WeightFormat = 'fp32'): number {
  let n = 0;
  for (const shape of entries) n += shape.reduce((a, b) => a * b, 1) * bytesPerWeight(format);
  return n;
}

/** A second graph written from the one built (the decoder's host graph), beside it. */
export interface GraphVariant {
  /** Its file name in the same folder. */
  readonly file: string;
  /** Makes it from the built graph, whose initializers it keeps (GraphBuilder.feeding). */
  readonly derive: (graph: GraphBuilder) => GraphBuilder;
}

/**
 * Writes one graph as `<dir>/<file>`, with its weights inline or in `<file>.data`, and each of
 * `variants` beside it: with external data they all point at `<file>.data`; inline, each file
 * holds its own copy (a session loads one of them; below the external-data threshold that costs
 * disk, not memory, and keeps the weights out of memory-mapped files, which onnxruntime reads in
 * place). Each graph is written under a temporary name and renamed at the end, so an interrupted
 * build never leaves a half-written model that looks complete.
 */
export async function writeGraph(
  dir: string,
  file: string,
  estimatedBytes: number,
  mode: ExternalDataMode,
  build: (sink?: InitializerSink) => Promise<GraphBuilder>,
  variants: readonly GraphVariant[] = [],
): Promise<{ bytes: number; external: boolean }> {
  const external = mode === 'always' || (mode === 'auto' && estimatedBytes > EXTERNAL_DATA_THRESHOLD);
  if (mode === 'never' && estimatedBytes > 2 * 1024 ** 3 - 1024 ** 2) {
    throw new Error(
      `${file}: ${estimatedBytes} bytes of weights do not fit a 2 GB protobuf; use external data`,
    );
  }
  const files = [file, ...variants.map((v) => v.file)];
  const tmp = (f: string): string => join(dir, `.${f}.partial`);
  let sink: ExternalDataSink | undefined;
  if (external) sink = new ExternalDataSink(join(dir, `${file}.data`), `${file}.data`);
  try {
    const graph = await build(sink);
    const write = (f: string, g: GraphBuilder): number =>
      writeChunks(tmp(f), serializeModelChunks(g, { opsets: OPSETS, producerVersion: BUILDER_VERSION }));
    let bytes = write(file, graph);
    for (const v of variants) bytes += write(v.file, v.derive(graph));
    for (const f of files) renameSync(tmp(f), join(dir, f));
    return { bytes: bytes + (sink?.bytesWritten ?? 0), external };
  } finally {
    sink?.close();
    for (const f of files) rmSync(tmp(f), { force: true });
  }
}

/** Writes `chunks` one after another, without joining them first (inline weights stay uncopied). */
function writeChunks(path: string, chunks: readonly Uint8Array[]): number {
  const fd = openSync(path, 'w');
  let total = 0;
  try {
    for (const chunk of chunks) {
      let written = 0;
      while (written < chunk.byteLength) {
        written += writeSync(fd, chunk, written, chunk.byteLength - written);
      }
      total += chunk.byteLength;
    }
  } finally {
    closeSync(fd);
  }
  return total;
}

export function writeModelJson(dir: string, json: ModelJson): void {
  writeFileSync(join(dir, 'model.json'), `${JSON.stringify(json, null, 2)}\n`);
}

export function componentDir(out: string, component: string, version: string): string {
  const dir = join(out, component, version);
  mkdirSync(dir, { recursive: true });
  return dir;
}
