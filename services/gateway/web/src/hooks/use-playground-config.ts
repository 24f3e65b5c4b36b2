import { useCallback, useEffect, useState } from 'react';
import { ApiError, getJson, messageOf } from '../api';
import { FALLBACK_CONFIG, readConfig, type PlaygroundConfig } from '../lib/config';
import type { AskForKey } from './use-api-key';

export type ConfigState =
  { readonly phase: 'loading' | 'ok' } | { readonly phase: 'fallback'; readonly error: string };

/**
 * The gateway's playground settings (limits, formats, defaults), fetched once on mount; the
 * fallback ones until then or when they cannot be had. `onLoaded` (stable) sees the loaded config.
 */
export function usePlaygroundConfig(
  key: () => string,
  askForKey: AskForKey,
  onLoaded: (config: PlaygroundConfig) => void,
): { readonly config: PlaygroundConfig; readonly state: ConfigState } {
  const [config, setConfig] = useState<PlaygroundConfig>(FALLBACK_CONFIG);
  const [state, setState] = useState<ConfigState>({ phase: 'loading' });

  const loadConfig = useCallback(async (): Promise<void> => {
    try {
      const loaded = readConfig(await getJson('/v1/playground/config', key()));
      setConfig(loaded);
      onLoaded(loaded);
      setState({ phase: 'ok' });
    } catch (error) {
      if (error instanceof ApiError && error.needsKey) {
        askForKey(error, () => void loadConfig());
        return;
      }
      setState({ phase: 'fallback', error: messageOf(error) });
    }
  }, [key, askForKey, onLoaded]);

  useEffect(() => {
    void loadConfig();
  }, [loadConfig]);

  return { config, state };
}
