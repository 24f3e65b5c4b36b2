import { useRef, useState } from 'react';
import { ApiError, postJson } from '../api';
import { IDLE_SEARCH, type SearchState } from '../components/SearchPanel';
import { searchBody } from '../lib/request';
import { readSearchHits } from '../lib/responses';
import type { AskForKey } from './use-api-key';
import type { Inputs } from './use-inputs';

export interface Search {
  readonly state: SearchState;
  readonly k: number;
  readonly setK: (k: number) => void;
  readonly search: () => Promise<void>;
}

/** Cross-modal search with the fused inputs: k and the latest request's hits. */
export function useSearch(model: string, inputs: Inputs, key: () => string, askForKey: AskForKey): Search {
  const [state, setState] = useState<SearchState>(IDLE_SEARCH);
  const [k, setK] = useState(5);
  const seqRef = useRef(0);

  const search = async (): Promise<void> => {
    const items = inputs.current();
    if (!inputs.check(items)) {
      setState({ ...IDLE_SEARCH, phase: 'error', error: 'Add inputs to search with first' });
      return;
    }
    const seq = ++seqRef.current;
    inputs.clearErrors();
    setState({ ...IDLE_SEARCH, phase: 'loading' });
    try {
      const wire = await inputs.toWire(items);
      const hits = readSearchHits(await postJson('/v1/search', searchBody(model, wire, k), key()));
      if (seq !== seqRef.current) return;
      setState({ phase: 'done', hits });
    } catch (error) {
      if (seq !== seqRef.current) return;
      if (error instanceof ApiError && error.needsKey) {
        setState(IDLE_SEARCH);
        askForKey(error, () => void search());
        return;
      }
      setState({ ...IDLE_SEARCH, phase: 'error', error: inputs.blame(error, items) });
    }
  };

  return { state, k, setK, search };
}
