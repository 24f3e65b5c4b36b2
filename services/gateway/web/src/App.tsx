import { AnswerPanel } from './components/AnswerPanel';
import { EmbeddingsPanel } from './components/EmbeddingsPanel';
import { InputsPanel } from './components/InputsPanel';
import { KeyPrompt } from './components/KeyPrompt';
import { PromptPanel } from './components/PromptPanel';
import { SearchPanel } from './components/SearchPanel';
import { SettingsPanel } from './components/SettingsPanel';
import { SiteHeader } from './components/SiteHeader';
import { useApiKey } from './hooks/use-api-key';
import { useChatRun } from './hooks/use-chat-run';
import { useEmbeddings } from './hooks/use-embeddings';
import { useFieldErrors } from './hooks/use-field-errors';
import { useInputs } from './hooks/use-inputs';
import { usePlaygroundConfig } from './hooks/use-playground-config';
import { useRequestSettings } from './hooks/use-request-settings';
import { useSearch } from './hooks/use-search';

/**
 * The playground page. State lives in one hook per concern (hooks/), the markup in one component
 * per panel (components/); this wires them together.
 */
export function App() {
  const apiKey = useApiKey();
  const { key, askForKey } = apiKey;
  const requestSettings = useRequestSettings();
  const { config, state: configState } = usePlaygroundConfig(key, askForKey, requestSettings.resetTo);
  const { errors, setError } = useFieldErrors();
  const inputs = useInputs(config, setError);
  const chat = useChatRun({ config, settings: requestSettings.settings, inputs, key, askForKey, setError });
  const embeddings = useEmbeddings(config.model, inputs, key, askForKey);
  const search = useSearch(config.model, inputs, key, askForKey);

  return (
    <>
      <a className="skip-link" href="#answer-title">
        Skip to the answer
      </a>
      <SiteHeader
        model={config.model}
        configState={configState}
        hasKey={apiKey.hasKey}
        onForgetKey={apiKey.forget}
      />
      {apiKey.prompt !== null ? (
        <KeyPrompt message={apiKey.prompt} onSubmit={apiKey.submit} onCancel={apiKey.cancel} />
      ) : null}
      <main className="layout">
        <div className="column">
          <InputsPanel config={config} inputs={inputs} errors={errors} setError={setError} />
          <PromptPanel chat={chat} error={errors.instruction} setError={setError} />
          <SettingsPanel config={config} settings={requestSettings} />
        </div>

        <div className="column">
          <AnswerPanel run={chat.run} />
          <EmbeddingsPanel
            state={embeddings.state}
            disabled={false}
            onCompute={() => void embeddings.compare()}
          />
          <SearchPanel
            state={search.state}
            k={search.k}
            onK={search.setK}
            disabled={false}
            onSearch={() => void search.search()}
          />
        </div>
      </main>
    </>
  );
}
