import type { ConfigState } from '../hooks/use-playground-config';

/** The title with the model and the settings' state, the key status, and why the defaults are used. */
export function SiteHeader(props: {
  readonly model: string;
  readonly configState: ConfigState;
  readonly hasKey: boolean;
  readonly onForgetKey: () => void;
}) {
  const { configState } = props;
  return (
    <>
      <header className="site-header">
        <div>
          <h1>ImageBind-LLM playground</h1>
          <p className="hint" data-testid="config-state" data-state={configState.phase}>
            Model <span className="mono">{props.model}</span>
            {configState.phase === 'loading' ? ' · loading settings…' : ''}
          </p>
        </div>
        {props.hasKey ? (
          <p className="key-status">
            API key set for this tab.{' '}
            <button type="button" className="button-quiet" onClick={props.onForgetKey}>
              Forget key
            </button>
          </p>
        ) : null}
      </header>
      {configState.phase === 'fallback' ? (
        <p className="banner" role="alert">
          The playground settings could not be loaded ({configState.error}); the usual defaults are used and
          the server checks every request.
        </p>
      ) : null}
    </>
  );
}
