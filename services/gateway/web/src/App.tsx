import { useCallback, useEffect, useRef, useState, type ChangeEvent } from 'react';
import {
  ApiError,
  fileToBase64,
  getJson,
  isAbort,
  messageOf,
  postJson,
  storedKey,
  storeKey,
  streamChat,
} from './api';
import { AnswerPanel, IDLE_RUN, type RunMetrics, type RunState } from './components/AnswerPanel';
import { EmbeddingsPanel, IDLE_EMBEDDINGS, type EmbeddingsState } from './components/EmbeddingsPanel';
import { FieldError } from './components/FieldError';
import { InputCard } from './components/InputCard';
import { KeyPrompt } from './components/KeyPrompt';
import { Recorder } from './components/Recorder';
import { IDLE_SEARCH, SearchPanel, type SearchHit, type SearchState } from './components/SearchPanel';
import { Slider } from './components/Slider';
import type { ChatUsage } from './lib/chat-stream';
import { FALLBACK_CONFIG, readConfig, type CacheSettings, type PlaygroundConfig } from './lib/config';
import { formatBytes, formatClock, shortList } from './lib/format';
import {
  checkFile,
  checkRequestSize,
  checkText,
  extensionOf,
  MODALITY_LABEL,
  recordingFormat,
  type Modality,
} from './lib/inputs';
import { mayPreview, parsePointCloud } from './lib/pointcloud';
import { chatBody, embeddingsBody, inputIndexOfError, searchBody, type WireInput } from './lib/request';
import { similarityMatrix } from './lib/similarity';
import { WEIGHT, type InputItem } from './model';

type FileModality = Exclude<Modality, 'text'>;
type FieldName = Modality | 'instruction' | 'inputs';

interface Settings {
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly cache: CacheSettings;
}

const settingsFrom = (config: PlaygroundConfig): Settings => ({
  maxTokens: config.defaults.maxTokens,
  temperature: config.defaults.temperature,
  topP: config.defaults.topP,
  cache: config.defaults.cache,
});

type ConfigState =
  { readonly phase: 'loading' | 'ok' } | { readonly phase: 'fallback'; readonly error: string };

/** The message of a server error shown on the input it names, without the JSON path in front. */
function messageForInput(message: string, label: string): string {
  const colon = message.indexOf(': ');
  const path = colon > 0 ? message.slice(0, colon) : '';
  return /^[\w.[\]]+$/.test(path) ? `${label}: ${message.slice(colon + 2)}` : message;
}

/** Scrolls an element into view, smoothly unless the user asked for reduced motion. */
function bringIntoView(id: string, block: ScrollLogicalPosition): void {
  const reduced = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  document.getElementById(id)?.scrollIntoView({ block, behavior: reduced ? 'auto' : 'smooth' });
}

export function App() {
  const [config, setConfig] = useState<PlaygroundConfig>(FALLBACK_CONFIG);
  const [configState, setConfigState] = useState<ConfigState>({ phase: 'loading' });
  const [settings, setSettings] = useState<Settings>(() => settingsFrom(FALLBACK_CONFIG));
  const [inputs, setInputs] = useState<InputItem[]>([]);
  const [errors, setErrors] = useState<Partial<Record<FieldName, string>>>({});
  const [instruction, setInstruction] = useState('');
  const [inputText, setInputText] = useState('');
  const [textInput, setTextInput] = useState('');
  const [run, setRun] = useState<RunState>(IDLE_RUN);
  const [embeddings, setEmbeddings] = useState<EmbeddingsState>(IDLE_EMBEDDINGS);
  const [search, setSearch] = useState<SearchState>(IDLE_SEARCH);
  const [k, setK] = useState(5);
  const [keyPrompt, setKeyPrompt] = useState<string | null>(null);
  const [hasKey, setHasKey] = useState(() => storedKey() !== '');

  const keyRef = useRef(storedKey());
  const retryRef = useRef<(() => void) | null>(null);
  const inputsRef = useRef<InputItem[]>([]);
  const encodedRef = useRef(new Map<string, string>());
  const nextId = useRef(0);
  const recordings = useRef(0);
  const runController = useRef<AbortController | null>(null);
  const runSeq = useRef(0);
  const embedSeq = useRef(0);
  const searchSeq = useRef(0);
  inputsRef.current = inputs;

  const setError = useCallback((field: FieldName, message: string | undefined) => {
    setErrors((e) => (e[field] === message ? e : { ...e, [field]: message }));
  }, []);

  const askForKey = useCallback((error: ApiError, retry: () => void) => {
    retryRef.current = retry;
    setKeyPrompt(error.message);
    // Rendered at the top of the page: bring it into view once it is there.
    requestAnimationFrame(() => bringIntoView('key-title', 'start'));
  }, []);

  const submitKey = (key: string): void => {
    keyRef.current = key;
    storeKey(key);
    setHasKey(true);
    setKeyPrompt(null);
    const retry = retryRef.current;
    retryRef.current = null;
    retry?.();
  };

  const forgetKey = (): void => {
    keyRef.current = '';
    storeKey('');
    setHasKey(false);
  };

  const loadConfig = useCallback(async (): Promise<void> => {
    try {
      const loaded = readConfig(await getJson('/v1/playground/config', keyRef.current));
      setConfig(loaded);
      setSettings(settingsFrom(loaded));
      setConfigState({ phase: 'ok' });
    } catch (error) {
      if (error instanceof ApiError && error.needsKey) {
        askForKey(error, () => void loadConfig());
        return;
      }
      setConfigState({ phase: 'fallback', error: messageOf(error) });
    }
  }, [askForKey]);

  useEffect(() => {
    void loadConfig();
  }, [loadConfig]);

  // Abort a running generation and free the previews' blob: URLs when the page goes away.
  useEffect(
    () => () => {
      runController.current?.abort();
      for (const item of inputsRef.current)
        if (item.previewUrl !== undefined) URL.revokeObjectURL(item.previewUrl);
    },
    [],
  );

  const updateInput = (id: string, change: (item: InputItem) => InputItem): void => {
    setInputs((list) => list.map((item) => (item.id === id ? change(item) : item)));
  };

  const addItem = (item: Omit<InputItem, 'id' | 'weight'>): string => {
    nextId.current += 1;
    const id = `input-${nextId.current}`;
    setInputs((list) => [...list, { ...item, id, weight: WEIGHT.initial }]);
    setError('inputs', undefined);
    return id;
  };

  const roomLeft = (): number => config.limits.maxInputs - inputsRef.current.length;

  const addFiles = (modality: FileModality, files: readonly File[]): void => {
    const problems: string[] = [];
    let room = roomLeft();
    for (const file of files) {
      if (room <= 0) {
        problems.push(
          `one request takes at most ${config.limits.maxInputs} inputs; ${file.name} was not added`,
        );
        continue;
      }
      const check = checkFile(modality, file, config);
      if (!check.ok) {
        problems.push(check.message);
        continue;
      }
      room -= 1;
      const extension = extensionOf(file.name);
      const base = { modality, label: file.name, blob: file, size: file.size };
      if (modality === 'point_cloud') {
        const preview = mayPreview(extension);
        const id = addItem({
          ...base,
          format: check.format,
          cloud: preview ? 'loading' : { kind: 'unsupported', reason: `.${extension} files` },
        });
        if (preview) {
          file
            .text()
            .then((text) => parsePointCloud(extension, text))
            .catch((error: unknown) => ({ kind: 'error' as const, message: messageOf(error) }))
            .then(
              (cloud) => updateInput(id, (item) => ({ ...item, cloud })),
              () => undefined,
            );
        }
      } else {
        addItem({
          ...base,
          ...(modality === 'audio' ? { format: check.format } : { mediaType: check.mediaType }),
          previewUrl: URL.createObjectURL(file),
        });
      }
    }
    setError(modality, problems.length === 0 ? undefined : problems.join('. '));
  };

  const onFileChange = (modality: FileModality) => (event: ChangeEvent<HTMLInputElement>) => {
    const files = Array.from(event.currentTarget.files ?? []);
    // Clear the control so choosing the same file again still counts as a change.
    event.currentTarget.value = '';
    if (files.length > 0) addFiles(modality, files);
  };

  const onRecorded = (blob: Blob, mimeType: string, seconds: number): void => {
    recordings.current += 1;
    const format = recordingFormat(mimeType);
    const label = `Recording ${recordings.current} (${formatClock(seconds)})`;
    if (blob.size > config.limits.maxInputBytes) {
      setError(
        'audio',
        `${label} is too large: ${formatBytes(blob.size)}, the limit is ${formatBytes(config.limits.maxInputBytes)} per input`,
      );
      return;
    }
    if (roomLeft() <= 0) {
      setError(
        'audio',
        `one request takes at most ${config.limits.maxInputs} inputs; the recording was not added`,
      );
      return;
    }
    setError('audio', undefined);
    addItem({
      modality: 'audio',
      label,
      blob,
      size: blob.size,
      format,
      previewUrl: URL.createObjectURL(blob),
    });
  };

  const addText = (): void => {
    const problem = checkText(textInput);
    if (problem !== undefined) {
      setError('text', problem);
      return;
    }
    if (roomLeft() <= 0) {
      setError('text', `one request takes at most ${config.limits.maxInputs} inputs`);
      return;
    }
    const text = textInput.trim();
    const label = text.length > 40 ? `“${text.slice(0, 40)}…”` : `“${text}”`;
    addItem({ modality: 'text', label, text, size: text.length });
    setTextInput('');
    setError('text', undefined);
  };

  const removeInput = (id: string): void => {
    const item = inputsRef.current.find((i) => i.id === id);
    if (item?.previewUrl !== undefined) URL.revokeObjectURL(item.previewUrl);
    encodedRef.current.delete(id);
    setInputs((list) => list.filter((i) => i.id !== id));
  };

  /** Base64 of every media input (read once per input), in the order shown. */
  const toWire = async (items: readonly InputItem[]): Promise<WireInput[]> =>
    Promise.all(
      items.map(async (item): Promise<WireInput> => {
        if (item.modality === 'text') return { modality: 'text', weight: item.weight, text: item.text ?? '' };
        let base64 = encodedRef.current.get(item.id);
        if (base64 === undefined) {
          base64 = await fileToBase64(item.blob!);
          encodedRef.current.set(item.id, base64);
        }
        const wire: WireInput = { modality: item.modality, weight: item.weight, base64 };
        return item.modality === 'image' || item.modality === 'video'
          ? { ...wire, mediaType: item.mediaType ?? '' }
          : { ...wire, format: item.format ?? '' };
      }),
    );

  /** Checks shared by every request; puts the messages next to the controls and says whether to go on. */
  const checkInputs = (items: readonly InputItem[]): boolean => {
    if (items.length === 0) {
      setError('inputs', 'Add at least one input first: an image, video, audio, text or point cloud');
      return false;
    }
    const tooBig = checkRequestSize(
      items.map((i) => ({ bytes: i.modality === 'text' ? 0 : i.size, textLength: i.text?.length ?? 0 })),
      config,
    );
    setError('inputs', tooBig);
    return tooBig === undefined;
  };

  /** Puts a server error on the input it is about (when it names one) and returns the message. */
  const blameInput = (error: unknown, sent: readonly InputItem[]): string => {
    const message = messageOf(error);
    const index = inputIndexOfError(error instanceof ApiError ? error.param : null, message);
    const item = index === undefined ? undefined : sent[index];
    if (item !== undefined) updateInput(item.id, (i) => ({ ...i, error: messageForInput(message, i.label) }));
    return message;
  };

  const clearInputErrors = (): void => {
    setInputs((list) => (list.some((i) => i.error) ? list.map((i) => ({ ...i, error: undefined })) : list));
  };

  const generate = async (): Promise<void> => {
    const items = inputsRef.current;
    const noInstruction = instruction.trim() === '';
    setError('instruction', noInstruction ? 'Write an instruction for the model first' : undefined);
    const inputsOk = checkInputs(items);
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
    clearInputErrors();
    setRun({ phase: 'preparing', answer: '', metrics: {} });

    let wire: WireInput[];
    try {
      wire = await toWire(items);
    } catch (error) {
      if (current()) setRun({ phase: 'error', answer: '', error: messageOf(error), metrics: {} });
      return;
    }
    if (!current() || controller.signal.aborted) return;

    const body = chatBody(config.model, wire, { instruction, inputText, ...settings });
    const sentAt = performance.now();
    let firstAt: number | undefined;
    let lastAt: number | undefined;
    let count = 0;
    let usage: ChatUsage | undefined;
    let finish: string | undefined;
    let streamError: { message: string; param: string | null } | undefined;
    const figures = (endAt: number): RunMetrics => {
      const m: {
        -readonly [K in keyof RunMetrics]: RunMetrics[K];
      } = { latencyMs: endAt - sentAt, tokens: usage?.completionTokens ?? count };
      if (firstAt !== undefined) m.ttftClientMs = firstAt - sentAt;
      if (firstAt !== undefined && lastAt !== undefined && count > 1 && lastAt > firstAt) {
        m.clientTokensPerSecond = (count - 1) / ((lastAt - firstAt) / 1000);
      }
      if (usage?.timeToFirstTokenMs !== undefined) m.ttftServerMs = usage.timeToFirstTokenMs;
      if (usage?.tokensPerSecond !== undefined) m.serverTokensPerSecond = usage.tokensPerSecond;
      if (usage?.seed !== undefined) m.seed = usage.seed;
      if (usage !== undefined) m.promptTokens = usage.promptTokens;
      if (finish !== undefined) m.finish = finish;
      return m;
    };
    setRun((r) => ({ ...r, phase: 'waiting' }));
    try {
      await streamChat(body, keyRef.current, controller.signal, (event) => {
        if (!current()) return;
        switch (event.kind) {
          case 'delta': {
            const now = performance.now();
            firstAt ??= now;
            lastAt = now;
            count += 1;
            const tokens = count;
            const ttft = firstAt - sentAt;
            setRun((r) => ({
              ...r,
              phase: 'streaming',
              answer: r.answer + event.text,
              metrics: { ...r.metrics, ttftClientMs: ttft, tokens },
            }));
            return;
          }
          case 'usage':
            usage = event.usage;
            return;
          case 'finish':
            finish = event.reason;
            return;
          case 'error':
            streamError = { message: event.message, param: event.param };
            return;
          case 'done':
            return;
        }
      });
      if (!current()) return;
      const metrics = figures(performance.now());
      if (streamError !== undefined) {
        const message = blameInput(new ApiError(200, streamError.message, streamError.param), items);
        setRun((r) => ({ ...r, phase: 'error', error: message, metrics }));
      } else if (finish === undefined && usage === undefined) {
        setRun((r) => ({ ...r, phase: 'error', error: 'The answer stream ended early', metrics }));
      } else {
        setRun((r) => ({ ...r, phase: 'done', metrics }));
      }
    } catch (error) {
      if (!current()) return;
      const metrics = figures(performance.now());
      if (controller.signal.aborted || isAbort(error)) {
        setRun((r) => ({ ...r, phase: 'stopped', metrics }));
      } else if (error instanceof ApiError && error.needsKey) {
        setRun({ ...IDLE_RUN });
        askForKey(error, () => void generate());
      } else {
        const message = blameInput(error, items);
        setRun((r) => ({ ...r, phase: 'error', error: message, metrics }));
      }
    } finally {
      if (runController.current === controller) runController.current = null;
    }
  };

  const stop = (): void => {
    runController.current?.abort();
  };

  const compareInputs = async (): Promise<void> => {
    const items = inputsRef.current;
    if (!checkInputs(items)) {
      setEmbeddings({ ...IDLE_EMBEDDINGS, phase: 'error', error: 'Add inputs to compare first' });
      return;
    }
    const seq = ++embedSeq.current;
    clearInputErrors();
    setEmbeddings({ ...IDLE_EMBEDDINGS, phase: 'loading' });
    try {
      const wire = await toWire(items);
      const json = (await postJson('/v1/embeddings', embeddingsBody(config.model, wire), keyRef.current)) as {
        data?: { index?: unknown; embedding?: unknown }[];
      };
      const rows = Array.isArray(json.data) ? [...json.data] : [];
      rows.sort((a, b) => Number(a.index) - Number(b.index));
      const vectors = rows.map((row) =>
        Array.isArray(row.embedding)
          ? row.embedding.map((v) => (typeof v === 'number' ? v : Number.NaN))
          : [],
      );
      if (vectors.length !== items.length || vectors.some((v) => v.length === 0 || v.some(Number.isNaN))) {
        throw new Error(`the server sent ${vectors.length} usable embeddings for ${items.length} inputs`);
      }
      if (seq !== embedSeq.current) return;
      setEmbeddings({
        phase: 'done',
        labels: items.map((i) => `${MODALITY_LABEL[i.modality]}: ${i.label}`),
        matrix: similarityMatrix(vectors),
      });
    } catch (error) {
      if (seq !== embedSeq.current) return;
      if (error instanceof ApiError && error.needsKey) {
        setEmbeddings(IDLE_EMBEDDINGS);
        askForKey(error, () => void compareInputs());
        return;
      }
      setEmbeddings({ ...IDLE_EMBEDDINGS, phase: 'error', error: blameInput(error, items) });
    }
  };

  const runSearch = async (): Promise<void> => {
    const items = inputsRef.current;
    if (!checkInputs(items)) {
      setSearch({ ...IDLE_SEARCH, phase: 'error', error: 'Add inputs to search with first' });
      return;
    }
    const seq = ++searchSeq.current;
    clearInputErrors();
    setSearch({ ...IDLE_SEARCH, phase: 'loading' });
    try {
      const wire = await toWire(items);
      const json = (await postJson('/v1/search', searchBody(config.model, wire, k), keyRef.current)) as {
        data?: { id?: unknown; score?: unknown; payload?: unknown }[];
      };
      const hits: SearchHit[] = (Array.isArray(json.data) ? json.data : []).map((hit) => {
        const payload: Record<string, string> = {};
        if (typeof hit.payload === 'object' && hit.payload !== null) {
          for (const [key, value] of Object.entries(hit.payload as Record<string, unknown>)) {
            payload[key] = typeof value === 'string' ? value : JSON.stringify(value);
          }
        }
        return { id: String(hit.id), score: Number(hit.score), payload };
      });
      if (seq !== searchSeq.current) return;
      setSearch({ phase: 'done', hits });
    } catch (error) {
      if (seq !== searchSeq.current) return;
      if (error instanceof ApiError && error.needsKey) {
        setSearch(IDLE_SEARCH);
        askForKey(error, () => void runSearch());
        return;
      }
      setSearch({ ...IDLE_SEARCH, phase: 'error', error: blameInput(error, items) });
    }
  };

  const running = run.phase === 'preparing' || run.phase === 'waiting' || run.phase === 'streaming';
  const full = inputs.length >= config.limits.maxInputs;
  const setCache = (change: Partial<CacheSettings>): void =>
    setSettings((s) => ({ ...s, cache: { ...s.cache, ...change } }));
  const fileField = (modality: FileModality, label: string, accept: string, accepted: readonly string[]) => {
    const id = `file-${modality.replace('_', '-')}`;
    return (
      <div className="file-field">
        <label htmlFor={id}>{label}</label>
        <input
          id={id}
          type="file"
          accept={accept}
          multiple
          disabled={full}
          aria-describedby={`${id}-hint ${modality}-error`}
          aria-invalid={errors[modality] !== undefined}
          onChange={onFileChange(modality)}
        />
        <p className="hint" id={`${id}-hint`}>
          {shortList(accepted, 8)}; up to {formatBytes(config.limits.maxInputBytes)}
        </p>
        <FieldError id={`${modality}-error`} message={errors[modality]} />
      </div>
    );
  };

  return (
    <>
      <a className="skip-link" href="#answer-title">
        Skip to the answer
      </a>
      <header className="site-header">
        <div>
          <h1>ImageBind-LLM playground</h1>
          <p className="hint" data-testid="config-state" data-state={configState.phase}>
            Model <span className="mono">{config.model}</span>
            {configState.phase === 'loading' ? ' · loading settings…' : ''}
          </p>
        </div>
        {hasKey ? (
          <p className="key-status">
            API key set for this tab.{' '}
            <button type="button" className="button-quiet" onClick={forgetKey}>
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
      {keyPrompt !== null ? (
        <KeyPrompt
          message={keyPrompt}
          onSubmit={submitKey}
          onCancel={() => {
            retryRef.current = null;
            setKeyPrompt(null);
          }}
        />
      ) : null}
      <main className="layout">
        <div className="column">
          <section className="panel" aria-labelledby="inputs-title">
            <h2 id="inputs-title">Inputs</h2>
            <p className="hint">
              Each input is embedded by ImageBind and mixed by its weight. Up to {config.limits.maxInputs} per
              request.
            </p>
            <div className="add-grid">
              {fileField('image', 'Image file', config.formats.image.join(','), config.formats.image)}
              {fileField('video', 'Video file', config.formats.video.join(','), config.formats.video)}
              <div className="file-field">
                <label htmlFor="file-audio">Audio file</label>
                <input
                  id="file-audio"
                  type="file"
                  accept={config.formats.audio.map((e) => `.${e}`).join(',')}
                  multiple
                  disabled={full}
                  aria-describedby="file-audio-hint audio-error"
                  aria-invalid={errors.audio !== undefined}
                  onChange={onFileChange('audio')}
                />
                <p className="hint" id="file-audio-hint">
                  {shortList(
                    config.formats.audio.map((e) => `.${e}`),
                    8,
                  )}
                  ; up to {formatBytes(config.limits.maxInputBytes)}
                </p>
                <Recorder
                  disabled={full}
                  describedBy="audio-error"
                  onRecorded={onRecorded}
                  onError={(message) => setError('audio', message)}
                />
                <FieldError id="audio-error" message={errors.audio} />
              </div>
              {fileField(
                'point_cloud',
                'Point cloud file',
                config.formats.pointCloud.map((e) => `.${e}`).join(','),
                config.formats.pointCloud.map((e) => `.${e}`),
              )}
              <div className="file-field text-field">
                <label htmlFor="text-input">Text input</label>
                <textarea
                  id="text-input"
                  rows={2}
                  value={textInput}
                  disabled={full}
                  aria-describedby="text-input-hint text-error"
                  aria-invalid={errors.text !== undefined}
                  onChange={(e) => setTextInput(e.currentTarget.value)}
                />
                <p className="hint" id="text-input-hint">
                  Embedded by ImageBind&apos;s text encoder, like any other input.
                </p>
                <button type="button" className="button-secondary" disabled={full} onClick={addText}>
                  Add text
                </button>
                <FieldError id="text-error" message={errors.text} />
              </div>
            </div>
            <h3 className="list-title">
              Selected inputs <span className="hint">({inputs.length})</span>
            </h3>
            {inputs.length === 0 ? <p className="hint">None yet.</p> : null}
            <ul className="input-list" aria-label="Selected inputs">
              {inputs.map((item) => (
                <InputCard
                  key={item.id}
                  item={item}
                  onWeight={(weight) => updateInput(item.id, (i) => ({ ...i, weight }))}
                  onRemove={() => removeInput(item.id)}
                />
              ))}
            </ul>
            <FieldError id="inputs-error" message={errors.inputs} />
          </section>

          <section className="panel" aria-labelledby="prompt-title">
            <h2 id="prompt-title">Prompt</h2>
            <form
              className="prompt-form"
              onSubmit={(event) => {
                event.preventDefault();
                if (!running) void generate();
              }}
            >
              <label htmlFor="instruction">Instruction</label>
              <textarea
                id="instruction"
                rows={3}
                value={instruction}
                placeholder="Describe the scene in detail."
                aria-describedby="instruction-hint instruction-error"
                aria-invalid={errors.instruction !== undefined}
                onChange={(e) => {
                  setInstruction(e.currentTarget.value);
                  if (e.currentTarget.value.trim() !== '') setError('instruction', undefined);
                }}
                onKeyDown={(e) => {
                  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
                    e.preventDefault();
                    if (!running) void generate();
                  }
                }}
              />
              <p className="hint" id="instruction-hint">
                What the model should do with the inputs. Ctrl+Enter sends.
              </p>
              <FieldError id="instruction-error" message={errors.instruction} />
              <label htmlFor="input-text">Input text (optional)</label>
              <textarea
                id="input-text"
                rows={2}
                value={inputText}
                aria-describedby="input-text-hint"
                onChange={(e) => setInputText(e.currentTarget.value)}
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
                    if (running) stop();
                  }}
                >
                  Stop
                </button>
              </div>
            </form>
          </section>

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
              onChange={(maxTokens) => setSettings((s) => ({ ...s, maxTokens }))}
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
              onChange={(temperature) => setSettings((s) => ({ ...s, temperature }))}
            />
            <Slider
              id="top-p"
              label="Top-p"
              min={0}
              max={1}
              step={0.01}
              value={settings.topP}
              format={(v) => v.toFixed(2)}
              onChange={(topP) => setSettings((s) => ({ ...s, topP }))}
            />
            <fieldset className="cache">
              <legend>Visual cache</legend>
              <label className="inline">
                <input
                  type="checkbox"
                  checked={settings.cache.enabled}
                  onChange={(e) => setCache({ enabled: e.currentTarget.checked })}
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
                onChange={(size) => setCache({ size })}
              />
              <Slider
                id="cache-temperature"
                label="Cache temperature"
                min={0}
                max={100}
                step={0.5}
                value={settings.cache.temperature}
                disabled={!settings.cache.enabled}
                onChange={(temperature) => setCache({ temperature })}
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
                onChange={(weight) => setCache({ weight })}
              />
            </fieldset>
            <button type="button" className="button-quiet" onClick={() => setSettings(settingsFrom(config))}>
              Reset to defaults
            </button>
          </details>
        </div>

        <div className="column">
          <AnswerPanel run={run} />
          <EmbeddingsPanel state={embeddings} disabled={false} onCompute={() => void compareInputs()} />
          <SearchPanel state={search} k={k} onK={setK} disabled={false} onSearch={() => void runSearch()} />
        </div>
      </main>
    </>
  );
}
