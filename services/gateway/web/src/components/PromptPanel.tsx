import type { ChatRun } from '../hooks/use-chat-run';
import type { SetFieldError } from '../hooks/use-field-errors';
import { FieldError } from './FieldError';

/** The instruction, the optional input text, and Generate / Stop. */
export function PromptPanel(props: {
  readonly chat: ChatRun;
  readonly error: string | undefined;
  readonly setError: SetFieldError;
}) {
  const { chat, setError } = props;
  const { running } = chat;
  return (
    <section className="panel" aria-labelledby="prompt-title">
      <h2 id="prompt-title">Prompt</h2>
      <form
        className="prompt-form"
        onSubmit={(event) => {
          event.preventDefault();
          if (!running) void chat.generate();
        }}
      >
        <label htmlFor="instruction">Instruction</label>
        <textarea
          id="instruction"
          rows={3}
          value={chat.instruction}
          placeholder="Describe the scene in detail."
          aria-describedby="instruction-hint instruction-error"
          aria-invalid={props.error !== undefined}
          onChange={(e) => {
            chat.setInstruction(e.currentTarget.value);
            if (e.currentTarget.value.trim() !== '') setError('instruction', undefined);
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              if (!running) void chat.generate();
            }
          }}
        />
        <p className="hint" id="instruction-hint">
          What the model should do with the inputs. Ctrl+Enter sends.
        </p>
        <FieldError id="instruction-error" message={props.error} />
        <label htmlFor="input-text">Input text (optional)</label>
        <textarea
          id="input-text"
          rows={2}
          value={chat.inputText}
          aria-describedby="input-text-hint"
          onChange={(e) => chat.setInputText(e.currentTarget.value)}
        />
        <p className="hint" id="input-text-hint">
          Extra context for the instruction (the prompt&apos;s “Input” section).
        </p>
        <div className="actions">
          {/* aria-disabled keeps both buttons focusable, so keyboard focus stays put as they swap roles. */}
          <button type="submit" className="button-primary" aria-disabled={running}>
            Generate
          </button>
          <button
            type="button"
            className="button-danger"
            aria-disabled={!running}
            onClick={() => {
              if (running) chat.stop();
            }}
          >
            Stop
          </button>
        </div>
      </form>
    </section>
  );
}
