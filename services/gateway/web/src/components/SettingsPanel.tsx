import type { RequestSettings } from '../hooks/use-request-settings';
import type { PlaygroundConfig } from '../lib/config';
import { Slider } from './Slider';

/** The generation knobs and the visual cache, within the server's limits. */
export function SettingsPanel(props: {
  readonly config: PlaygroundConfig;
  readonly settings: RequestSettings;
}) {
  const { config } = props;
  const { settings, change, changeCache, resetTo } = props.settings;
  return (
    <details className="panel settings" open>
      <summary>
        <h2>Generation settings</h2>
      </summary>
      <Slider
        id="max-tokens"
        label="Max length (tokens)"
        min={1}
        max={config.limits.maxTokens}
        step={1}
        value={settings.maxTokens}
        onChange={(maxTokens) => change({ maxTokens })}
      />
      <Slider
        id="temperature"
        label="Temperature"
        min={0}
        max={Math.max(1, config.defaults.temperature)}
        step={0.01}
        value={settings.temperature}
        format={(v) => v.toFixed(2)}
        hint="0 always picks the most likely token."
        onChange={(temperature) => change({ temperature })}
      />
      <Slider
        id="top-p"
        label="Top-p"
        min={0}
        max={1}
        step={0.01}
        value={settings.topP}
        format={(v) => v.toFixed(2)}
        onChange={(topP) => change({ topP })}
      />
      <fieldset className="cache">
        <legend>Visual cache</legend>
        <label className="inline">
          <input
            type="checkbox"
            checked={settings.cache.enabled}
            onChange={(e) => changeCache({ enabled: e.currentTarget.checked })}
          />{' '}
          Blend the query with its nearest cached images
        </label>
        <Slider
          id="cache-size"
          label="Cache size"
          min={1}
          max={100}
          step={1}
          value={settings.cache.size}
          disabled={!settings.cache.enabled}
          onChange={(size) => changeCache({ size })}
        />
        <Slider
          id="cache-temperature"
          label="Cache temperature"
          min={0}
          max={100}
          step={0.5}
          value={settings.cache.temperature}
          disabled={!settings.cache.enabled}
          onChange={(temperature) => changeCache({ temperature })}
        />
        <Slider
          id="cache-weight"
          label="Cache weight"
          min={0}
          max={1}
          step={0.05}
          value={settings.cache.weight}
          format={(v) => v.toFixed(2)}
          disabled={!settings.cache.enabled}
          onChange={(weight) => changeCache({ weight })}
        />
      </fieldset>
      <button type="button" className="button-quiet" onClick={() => resetTo(config)}>
        Reset to defaults
      </button>
    </details>
  );
}
