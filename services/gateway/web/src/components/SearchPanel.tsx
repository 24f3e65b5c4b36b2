import type { SearchHit } from '../lib/responses';

export type { SearchHit } from '../lib/responses';

export interface SearchState {
  readonly phase: 'idle' | 'loading' | 'done' | 'error';
  readonly hits: readonly SearchHit[];
  readonly error?: string;
}

export const IDLE_SEARCH: SearchState = { phase: 'idle', hits: [] };

/** Cross-modal search: the fused query of the inputs against the cache index. */
export function SearchPanel(props: {
  readonly state: SearchState;
  readonly k: number;
  readonly onK: (k: number) => void;
  readonly disabled: boolean;
  readonly onSearch: () => void;
}) {
  const { state } = props;
  return (
    <section className="panel" aria-labelledby="search-title">
      <h2 id="search-title">Cross-modal search</h2>
      <p className="hint" id="search-hint">
        Finds the items of the cache index nearest to the weighted mix of the inputs, whatever their modality.
      </p>
      <form
        className="search-form"
        onSubmit={(event) => {
          event.preventDefault();
          props.onSearch();
        }}
      >
        <label htmlFor="search-k">Results (k)</label>
        <input
          id="search-k"
          type="number"
          inputMode="numeric"
          min={1}
          max={100}
          step={1}
          value={props.k}
          onChange={(e) => {
            const k = Math.round(Number(e.currentTarget.value));
            props.onK(Number.isFinite(k) ? Math.max(1, Math.min(100, k)) : 10);
          }}
        />
        <button
          type="submit"
          className="button-secondary"
          disabled={props.disabled || state.phase === 'loading'}
          aria-describedby="search-hint"
        >
          Search
        </button>
        <span className="hint" role="status">
          {state.phase === 'loading'
            ? 'Searching…'
            : state.phase === 'done'
              ? `${state.hits.length} hits`
              : ''}
        </span>
      </form>
      <p className="field-error" role="alert" data-testid="search-error">
        {state.error ?? ''}
      </p>
      {state.phase === 'done' && state.hits.length === 0 ? <p>No hits: the index is empty.</p> : null}
      {state.phase === 'done' && state.hits.length > 0 ? (
        <div className="table-scroll" role="region" aria-label="Search results" tabIndex={0}>
          <table className="hits" data-testid="search-results">
            <caption className="visually-hidden">Nearest items, best first</caption>
            <thead>
              <tr>
                <th scope="col">Rank</th>
                <th scope="col">ID</th>
                <th scope="col">Score</th>
                <th scope="col">Payload</th>
              </tr>
            </thead>
            <tbody>
              {state.hits.map((hit, i) => {
                const entries = Object.entries(hit.payload);
                return (
                  <tr key={`${hit.id}-${i}`}>
                    <td>{i + 1}</td>
                    <td className="mono">{hit.id}</td>
                    <td className="mono">{hit.score.toFixed(4)}</td>
                    <td>
                      {entries.length === 0 ? (
                        <span className="hint">none</span>
                      ) : (
                        <dl className="payload">
                          {entries.map(([key, value]) => (
                            <div key={key}>
                              <dt>{key}</dt>
                              <dd>{value}</dd>
                            </div>
                          ))}
                        </dl>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}
