import { useEffect, useRef, useState } from 'react';

/**
 * Shown when the gateway answers 401: asks for an API key, which is kept in this tab's
 * sessionStorage only, then the refused call is tried again.
 */
export function KeyPrompt(props: {
  readonly message: string;
  readonly onSubmit: (key: string) => void;
  readonly onCancel: () => void;
}) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const inputRef = useRef<HTMLInputElement>(null);
  useEffect(() => inputRef.current?.focus(), []);
  return (
    <section className="panel key-prompt" aria-labelledby="key-title">
      <h2 id="key-title">API key needed</h2>
      <p>
        The gateway refused the request: <span className="quote">{props.message}</span>. Enter an API key; it
        is kept in this browser tab only (session storage) and sent as a bearer token.
      </p>
      <form
        className="key-form"
        onSubmit={(event) => {
          event.preventDefault();
          const trimmed = key.trim();
          if (trimmed === '') {
            setError('Enter the key first');
            return;
          }
          props.onSubmit(trimmed);
        }}
      >
        <label htmlFor="api-key">API key</label>
        <input
          ref={inputRef}
          id="api-key"
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={key}
          aria-describedby="api-key-error"
          aria-invalid={error !== undefined}
          onChange={(e) => {
            setKey(e.currentTarget.value);
            setError(undefined);
          }}
        />
        <div className="actions">
          <button type="submit" className="button-primary">
            Use this key
          </button>
          <button type="button" className="button-quiet" onClick={props.onCancel}>
            Cancel
          </button>
        </div>
        <p className="field-error" id="api-key-error" role="alert">
          {error ?? ''}
        </p>
      </form>
    </section>
  );
}
