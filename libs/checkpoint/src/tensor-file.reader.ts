import { openFileSource, type ByteSource } from './byte-source';
import { openSafetensors } from './safetensors.reader';
import type { TensorEntry } from './tensor';
import { openTorchCheckpoint, type TreePath } from './torch-checkpoint.reader';

export interface TensorFile {
  readonly format: 'torch' | 'safetensors';
  readonly file: string;
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  close(): Promise<void>;
}

export interface OpenTensorFileOptions {
  /** For torch files: where the state dict sits in the pickled object (e.g. `['model']`). */
  readonly prefixPath?: TreePath;
}

/**
 * Opens a state dict from either a torch zip checkpoint or a safetensors file, chosen by content
 * (not extension), so an operator may swap a `.pth` for its safetensors conversion (MODEL_SPEC §6.5).
 */
export async function openTensorFile(
  input: string | ByteSource,
  options: OpenTensorFileOptions = {},
): Promise<TensorFile> {
  const source = typeof input === 'string' ? await openFileSource(input) : input;
  let head: Uint8Array;
  try {
    head = await source.read(0, Math.min(9, source.size));
  } catch (error) {
    await source.close();
    throw error;
  }
  const looksSafetensors = head.length === 9 && head[8] === 0x7b && !(head[0] === 0x50 && head[1] === 0x4b);
  if (looksSafetensors) {
    const st = await openSafetensors(source);
    return { format: 'safetensors', file: st.file, tensors: st.tensors, close: async () => st.close() };
  }
  const ckpt = await openTorchCheckpoint(source);
  let tensors: ReadonlyMap<string, TensorEntry>;
  try {
    tensors = ckpt.stateDict(options.prefixPath);
  } catch (error) {
    await ckpt.close();
    throw error;
  }
  return { format: 'torch', file: ckpt.file, tensors, close: async () => ckpt.close() };
}
