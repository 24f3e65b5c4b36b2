import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { ResolvedComponent } from '../model-repository';
import type { DecoderShape } from './generation-engine';

function configNumber(component: ResolvedComponent, key: string): number {
  const v = component.json.config[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new DomainError(
      ErrorCode.FailedPrecondition,
      `${component.dir}/model.json config.${key} is missing or not a non-negative integer; rebuild the repository`,
    );
  }
  return v;
}

/** The decoder's dims from a llama-decoder component's model.json (validated). */
export function decoderShapeOf(component: ResolvedComponent): DecoderShape {
  const kv = component.json.config['kvDtype'];
  if (kv !== undefined && kv !== 'float32' && kv !== 'float16') {
    throw new DomainError(
      ErrorCode.FailedPrecondition,
      `${component.dir}/model.json config.kvDtype is ${JSON.stringify(kv)}; expected "float32" or "float16"`,
    );
  }
  return {
    nLayers: configNumber(component, 'nLayers'),
    nHeads: configNumber(component, 'nHeads'),
    headDim: configNumber(component, 'headDim'),
    dim: configNumber(component, 'dim'),
    vocabSize: configNumber(component, 'vocabSize'),
    maxSeqLen: configNumber(component, 'maxSeqLen'),
    eosId: configNumber(component, 'eosId'),
    kvDtype: kv ?? 'float32',
  };
}
