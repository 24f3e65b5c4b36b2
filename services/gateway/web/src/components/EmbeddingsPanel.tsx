export interface EmbeddingsState {
  readonly phase: 'idle' | 'loading' | 'done' | 'error';
  readonly labels: readonly string[];
  readonly matrix: readonly (readonly number[])[];
  readonly error?: string;
}

export const IDLE_EMBEDDINGS: EmbeddingsState = { phase: 'idle', labels: [], matrix: [] };

/** Cell colour: white for dissimilar, deepening blue toward 1; text stays dark enough to read. */
function cellColour(value: number): string {
  const t = Math.max(0, Math.min(1, (value + 1) / 2));
  return `hsl(210 80% ${Math.round(98 - t * 26)}%)`;
}

/** The cosine-similarity matrix of the selected inputs' ImageBind embeddings. */
export function EmbeddingsPanel(props: {
  readonly state: EmbeddingsState;
  readonly disabled: boolean;
  readonly onCompute: () => void;
}) {
  const { state } = props;
  return (
    <section className="panel" aria-labelledby="embeddings-title">
      <h2 id="embeddings-title">Embeddings</h2>
      <p className="hint" id="embeddings-hint">
        Embeds every input with ImageBind (1024 dimensions) and compares each pair by cosine similarity.
      </p>
      <div className="actions">
        <button
          type="button"
          className="button-secondary"
          disabled={props.disabled || state.phase === 'loading'}
          aria-describedby="embeddings-hint"
          onClick={props.onCompute}
        >
          Compare inputs
        </button>
        <span className="hint" role="status">
          {state.phase === 'loading' ? 'Embedding…' : ''}
        </span>
      </div>
      <p className="field-error" role="alert" data-testid="embeddings-error">
        {state.error ?? ''}
      </p>
      {state.phase === 'done' ? (
        <div className="table-scroll" role="region" aria-label="Similarity matrix" tabIndex={0}>
          <table className="matrix" data-testid="similarity-matrix">
            <caption>Cosine similarity between the inputs (1.000 = same direction)</caption>
            <thead>
              <tr>
                <td />
                {state.labels.map((label, j) => (
                  <th key={j} scope="col">
                    <span aria-hidden="true">{j + 1}</span>
                    <span className="visually-hidden">{label}</span>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {state.matrix.map((row, i) => (
                <tr key={i}>
                  <th scope="row">
                    {i + 1}. {state.labels[i]}
                  </th>
                  {row.map((value, j) => (
                    <td key={j} style={{ backgroundColor: cellColour(value) }}>
                      {value.toFixed(3)}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}
