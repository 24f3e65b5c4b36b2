import { useEffect, useRef, useState } from 'react';
import { ApiError, isAbort, messageOf, streamChat } from '../api';
import { IDLE_RUN, type RunState } from '../components/AnswerPanel';
import type { PlaygroundConfig } from '../lib/config';
import { chatBody, type WireInput } from '../lib/request';
import { StreamTimings } from '../lib/run-metrics';
import { bringIntoView } from '../lib/view';
import type { AskForKey } from './use-api-key';
import type { SetFieldError } from './use-field-errors';
import type { Inputs } from './use-inputs';
import type { Settings } from './use-request-settings';

export interface ChatRunDeps {
  readonly config: PlaygroundConfig;
  readonly settings: Settings;
  readonly inputs: Inputs;
  readonly key: () => string;
  readonly askForKey: AskForKey;
  readonly setError: SetFieldError;
}

export interface ChatRun {
  readonly instruction: string;
  readonly setInstruction: (instruction: string) => void;
  readonly inputText: string;
  readonly setInputText: (inputText: string) => void;
  readonly run: RunState;
  /** Preparing, waiting or streaming. */
  readonly running: boolean;
  readonly generate: () => Promise<void>;
  readonly stop: () => void;
}

/**
 * The prompt and the streamed answer. A new Generate aborts the previous run, and events of a run
 * that is no longer the latest are ignored.
 */
export function useChatRun({ config, settings, inputs, key, askForKey, setError }: ChatRunDeps): ChatRun {
  const [instruction, setInstruction] = useState('');
  const [inputText, setInputText] = useState('');
  const [run, setRun] = useState<RunState>(IDLE_RUN);
  const runController = useRef<AbortController | null>(null);
  const runSeq = useRef(0);

  // Abort a running generation when the page goes away.
  useEffect(
    () => () => {
      runController.current?.abort();
    },
    [],
  );

  const generate = async (): Promise<void> => {
    const items = inputs.current();
    const noInstruction = instruction.trim() === '';
    setError('instruction', noInstruction ? 'Write an instruction for the model first' : undefined);
    const inputsOk = inputs.check(items);
    if (noInstruction) document.getElementById('instruction')?.focus();
    else if (!inputsOk) bringIntoView('inputs-error', 'center');
    if (noInstruction || !inputsOk) return;
    // The Generate button sits below the inputs; the answer (the right column on a wide screen, the
    // end of the page on a phone) would otherwise appear out of sight.
    bringIntoView('answer', 'start');

    runController.current?.abort();
    const controller = new AbortController();
    runController.current = controller;
    const seq = ++runSeq.current;
    const current = (): boolean => runSeq.current === seq;
    inputs.clearErrors();
    setRun({ phase: 'preparing', answer: '', metrics: {} });

    let wire: WireInput[];
    try {
      wire = await inputs.toWire(items);
    } catch (error) {
      if (current()) setRun({ phase: 'error', answer: '', error: messageOf(error), metrics: {} });
      return;
    }
    if (!current() || controller.signal.aborted) return;

    const body = chatBody(config.model, wire, { instruction, inputText, ...settings });
    const timings = new StreamTimings(performance.now());
    let streamError: { message: string; param: string | null } | undefined;
    setRun((r) => ({ ...r, phase: 'waiting' }));
    try {
      await streamChat(body, key(), controller.signal, (event) => {
        if (!current()) return;
        switch (event.kind) {
          case 'delta': {
            const { ttftClientMs, tokens } = timings.token(performance.now());
            setRun((r) => ({
              ...r,
              phase: 'streaming',
              answer: r.answer + event.text,
              metrics: { ...r.metrics, ttftClientMs, tokens },
            }));
            return;
          }
          case 'usage':
            timings.usage = event.usage;
            return;
          case 'finish':
            timings.finish = event.reason;
            return;
          case 'error':
            streamError = { message: event.message, param: event.param };
            return;
          case 'done':
            return;
        }
      });
      if (!current()) return;
      const metrics = timings.figures(performance.now());
      if (streamError !== undefined) {
        const message = inputs.blame(new ApiError(200, streamError.message, streamError.param), items);
        setRun((r) => ({ ...r, phase: 'error', error: message, metrics }));
      } else if (timings.finish === undefined && timings.usage === undefined) {
        setRun((r) => ({ ...r, phase: 'error', error: 'The answer stream ended early', metrics }));
      } else {
        setRun((r) => ({ ...r, phase: 'done', metrics }));
      }
    } catch (error) {
      if (!current()) return;
      const metrics = timings.figures(performance.now());
      if (controller.signal.aborted || isAbort(error)) {
        setRun((r) => ({ ...r, phase: 'stopped', metrics }));
      } else if (error instanceof ApiError && error.needsKey) {
        setRun({ ...IDLE_RUN });
        askForKey(error, () => void generate());
      } else {
        const message = inputs.blame(error, items);
        setRun((r) => ({ ...r, phase: 'error', error: message, metrics }));
      }
    } finally {
      if (runController.current === controller) runController.current = null;
    }
  };

  const stop = (): void => {
    runController.current?.abort();
  };

  const running = run.phase === 'preparing' || run.phase === 'waiting' || run.phase === 'streaming';
  return { instruction, setInstruction, inputText, setInputText, run, running, generate, stop };
}
