import { useRef, useState } from 'react';
import { ApiError, postJson } from '../api';
import { IDLE_EMBEDDINGS, type EmbeddingsState } from '../components/EmbeddingsPanel';
import { MODALITY_LABEL } from '../lib/inputs';
import { embeddingsBody } from '../lib/request';
import { readEmbeddings } from '../lib/responses';
import { similarityMatrix } from '../lib/similarity';
import type { AskForKey } from './use-api-key';
import type { Inputs } from './use-inputs';

/** The embeddings panel: the inputs' embeddings and their cosine similarities. Only the latest request shows. */
export function useEmbeddings(
  model: string,
  inputs: Inputs,
  key: () => string,
  askForKey: AskForKey,
): { readonly state: EmbeddingsState; readonly compare: () => Promise<void> } {
  const [state, setState] = useState<EmbeddingsState>(IDLE_EMBEDDINGS);
  const seqRef = useRef(0);

  const compare = async (): Promise<void> => {
    const items = inputs.current();
    if (!inputs.check(items)) {
      setState({ ...IDLE_EMBEDDINGS, phase: 'error', error: 'Add inputs to compare first' });
      return;
    }
    const seq = ++seqRef.current;
    inputs.clearErrors();
    setState({ ...IDLE_EMBEDDINGS, phase: 'loading' });
    try {
      const wire = await inputs.toWire(items);
      const json = await postJson('/v1/embeddings', embeddingsBody(model, wire), key());
      const vectors = readEmbeddings(json, items.length);
      if (seq !== seqRef.current) return;
      setState({
        phase: 'done',
        labels: items.map((i) => `${MODALITY_LABEL[i.modality]}: ${i.label}`),
        matrix: similarityMatrix(vectors),
      });
    } catch (error) {
      if (seq !== seqRef.current) return;
      if (error instanceof ApiError && error.needsKey) {
        setState(IDLE_EMBEDDINGS);
        askForKey(error, () => void compare());
        return;
      }
      setState({ ...IDLE_EMBEDDINGS, phase: 'error', error: inputs.blame(error, items) });
    }
  };

  return { state, compare };
}
