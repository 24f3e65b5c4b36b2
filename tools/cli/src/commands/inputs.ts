import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { INPUT_MODALITIES, type InputModality, type ModalityInput } from '@imagebind-llm/inference';
import { CliError } from '../cli-error';

/** parseArgs options shared by `embed` and `generate` for the raw inputs. */
export const INPUT_OPTIONS = {
  image: { type: 'string', multiple: true },
  video: { type: 'string', multiple: true },
  audio: { type: 'string', multiple: true },
  text: { type: 'string', multiple: true },
  point: { type: 'string', multiple: true },
  weight: { type: 'string', multiple: true },
} as const;

export const INPUTS_USAGE = `[--image F] [--video F] [--audio F] [--text S] [--point F] [--weight MODALITY=W ...]`;

/**
 * Reads the raw inputs named on the command line, in the order the modalities are listed
 * (image, video, audio, text, point), with `--weight MODALITY=W` (default 1, must be > 0).
 */
export function collectInputs(values: Record<string, unknown>): ModalityInput[] {
  const weights = new Map<InputModality, number>();
  for (const spec of (values['weight'] as string[] | undefined) ?? []) {
    const m = /^([a-z]+)=(.+)$/.exec(spec);
    const modality = m?.[1] as InputModality | undefined;
    const w = Number(m?.[2]);
    if (modality === undefined || !INPUT_MODALITIES.includes(modality)) {
      throw new CliError(
        `--weight ${JSON.stringify(spec)}: use MODALITY=W with MODALITY one of ${INPUT_MODALITIES.join(', ')}`,
      );
    }
    if (!(Number.isFinite(w) && w > 0))
      throw new CliError(`--weight ${spec}: the weight must be a positive number`);
    weights.set(modality, w);
  }
  const inputs: ModalityInput[] = [];
  for (const modality of INPUT_MODALITIES) {
    for (const value of (values[modality] as string[] | undefined) ?? []) {
      const weight = weights.get(modality) ?? 1;
      if (modality === 'text') {
        inputs.push({ modality, weight, text: value });
        continue;
      }
      let bytes: Buffer;
      try {
        bytes = readFileSync(value);
      } catch (error) {
        throw new CliError(`--${modality} ${value}: ${(error as Error).message}`);
      }
      inputs.push({ modality, weight, bytes, fileName: basename(value) });
    }
  }
  for (const m of weights.keys()) {
    if (!inputs.some((i) => i.modality === m))
      throw new CliError(`--weight ${m}=…: there is no --${m} input`);
  }
  return inputs;
}
