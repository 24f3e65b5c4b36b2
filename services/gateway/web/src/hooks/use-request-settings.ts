import { useCallback, useState } from 'react';
import { FALLBACK_CONFIG, type CacheSettings, type PlaygroundConfig } from '../lib/config';

/** The generation knobs of the settings panel. */
export interface Settings {
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly cache: CacheSettings;
}

export const settingsFrom = (config: PlaygroundConfig): Settings => ({
  maxTokens: config.defaults.maxTokens,
  temperature: config.defaults.temperature,
  topP: config.defaults.topP,
  cache: config.defaults.cache,
});

export interface RequestSettings {
  readonly settings: Settings;
  readonly change: (change: Partial<Omit<Settings, 'cache'>>) => void;
  readonly changeCache: (change: Partial<CacheSettings>) => void;
  /** Back to the server's defaults. Stable across renders. */
  readonly resetTo: (config: PlaygroundConfig) => void;
}

/** The generation settings, starting from the fallback defaults until the server's arrive. */
export function useRequestSettings(): RequestSettings {
  const [settings, setSettings] = useState<Settings>(() => settingsFrom(FALLBACK_CONFIG));
  const resetTo = useCallback((config: PlaygroundConfig) => setSettings(settingsFrom(config)), []);
  const change = (next: Partial<Omit<Settings, 'cache'>>): void => setSettings((s) => ({ ...s, ...next }));
  const changeCache = (next: Partial<CacheSettings>): void =>
    setSettings((s) => ({ ...s, cache: { ...s.cache, ...next } }));
  return { settings, change, changeCache, resetTo };
}
