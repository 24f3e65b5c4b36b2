import { useEffect, useRef } from 'react';
import { formatMs, formatRate } from '../lib/format';
import type { RunMetrics } from '../lib/run-metrics';

export type { RunMetrics } from '../lib/run-metrics';

export type RunPhase = 'idle' | 'preparing' | 'waiting' | 'streaming' | 'done' | 'stopped' | 'error';

export interface RunState {
  readonly phase: RunPhase;
  readonly answer: string;
  readonly error?: string;
  readonly metrics: RunMetrics;
}

export const IDLE_RUN: RunState = { phase: 'idle', answer: '', metrics: {} };

function statusText(run: RunState): string {
  switch (run.phase) {
    case 'idle':
      return 'Add inputs, write an instruction, then choose Generate.';
    case 'preparing':
      return 'Reading the inputs…';
    case 'waiting':
      return 'Sent; waiting for the first token…';
    case 'streaming':
      return 'Streaming…';
    case 'done':
      return run.metrics.finish === 'length' ? 'Done (reached the maximum length).' : 'Done.';
    case 'stopped':
      return 'Stopped.';
    case 'error':
      return 'The request failed.';
  }
}

/** The streamed answer, its status, errors and timing figures. */
export function AnswerPanel(props: { readonly run: RunState }) {
  const { run } = props;
  const m = run.metrics;
  const answerRef = useRef<HTMLDivElement>(null);
  // Follow the text as it streams, unless the reader has scrolled up to read something earlier.
  const following = useRef(true);
  useEffect(() => {
    const el = answerRef.current;
    if (el !== null && following.current) el.scrollTop = el.scrollHeight;
  }, [run.answer]);
  const busy = run.phase === 'preparing' || run.phase === 'waiting' || run.phase === 'streaming';
  const rows: [string, string, string][] = [
    [
      'latency',
      run.phase === 'stopped' ? 'Latency (until stopped)' : 'Latency (request → done)',
      formatMs(m.latencyMs),
    ],
    ['ttft-client', 'Time to first token (this page)', formatMs(m.ttftClientMs)],
    ['ttft-server', 'Time to first token (server)', formatMs(m.ttftServerMs)],
    ['tokens', 'Tokens generated', m.tokens === undefined ? '—' : String(m.tokens)],
    ['tps-server', 'Tokens/s (server)', formatRate(m.serverTokensPerSecond)],
    ['tps-client', 'Tokens/s (this page)', formatRate(m.clientTokensPerSecond)],
  ];
  if (m.seed !== undefined) rows.push(['seed', 'Seed', String(m.seed)]);
  return (
    <section className="panel" id="answer" aria-labelledby="answer-title">
      <h2 id="answer-title" tabIndex={-1}>
        Answer
      </h2>
      <p
        className={`status status-${run.phase}`}
        role="status"
        data-testid="run-status"
        data-phase={run.phase}
      >
        {statusText(run)}
      </p>
      <div
        className="answer"
        id="answer-text"
        data-testid="answer"
        aria-live="polite"
        aria-busy={busy}
        aria-label="Answer text"
        role="log"
        tabIndex={0}
        ref={answerRef}
        onScroll={(e) => {
          const el = e.currentTarget;
          following.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {run.answer}
      </div>
      <p className="field-error" role="alert" data-testid="answer-error">
        {run.error ?? ''}
      </p>
      <h3 className="visually-hidden">Timing</h3>
      <dl className="metrics" data-testid="metrics">
        {rows.map(([key, label, value]) => (
          <div key={key} className="metric" data-metric={key}>
            <dt>{label}</dt>
            <dd>{value}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}
