import { useCallback, useRef, useState } from 'react';
import { storedKey, storeKey, type ApiError } from '../api';
import { bringIntoView } from '../lib/view';

/** Asks for a key after a 401 and runs `retry` once one is given. Stable across renders. */
export type AskForKey = (error: ApiError, retry: () => void) => void;

export interface ApiKeyState {
  /** The key to send now ('' for none). Stable across renders; reads the latest key. */
  readonly key: () => string;
  /** Whether a key is stored for this tab. */
  readonly hasKey: boolean;
  /** The server's message while the key prompt is shown, else null. */
  readonly prompt: string | null;
  readonly askForKey: AskForKey;
  /** Stores the key, closes the prompt and retries the call that asked for it. */
  readonly submit: (key: string) => void;
  /** Closes the prompt without retrying. */
  readonly cancel: () => void;
  readonly forget: () => void;
}

/** The API key of this tab (sessionStorage) and the prompt that asks for one on a 401. */
export function useApiKey(): ApiKeyState {
  const [prompt, setPrompt] = useState<string | null>(null);
  const [hasKey, setHasKey] = useState(() => storedKey() !== '');
  const keyRef = useRef(storedKey());
  const retryRef = useRef<(() => void) | null>(null);

  const key = useCallback(() => keyRef.current, []);

  const askForKey = useCallback<AskForKey>((error, retry) => {
    retryRef.current = retry;
    setPrompt(error.message);
    // Rendered at the top of the page: bring it into view once it is there.
    requestAnimationFrame(() => bringIntoView('key-title', 'start'));
  }, []);

  const submit = (value: string): void => {
    keyRef.current = value;
    storeKey(value);
    setHasKey(true);
    setPrompt(null);
    const retry = retryRef.current;
    retryRef.current = null;
    retry?.();
  };

  const cancel = (): void => {
    retryRef.current = null;
    setPrompt(null);
  };

  const forget = (): void => {
    keyRef.current = '';
    storeKey('');
    setHasKey(false);
  };

  return { key, hasKey, prompt, askForKey, submit, cancel, forget };
}
