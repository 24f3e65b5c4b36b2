import { useEffect, useRef, useState } from 'react';
import { ApiError, fileToBase64, messageOf } from '../api';
import type { PlaygroundConfig } from '../lib/config';
import { formatBytes, formatClock } from '../lib/format';
import {
  checkFile,
  checkRequestSize,
  checkText,
  extensionOf,
  recordingFormat,
  type Modality,
} from '../lib/inputs';
import { mayPreview, parsePointCloud } from '../lib/pointcloud';
import { inputIndexOfError, type WireInput } from '../lib/request';
import { WEIGHT, type InputItem } from '../model';
import type { SetFieldError } from './use-field-errors';

export type FileModality = Exclude<Modality, 'text'>;

/** The selected inputs and what the requests built from them need. */
export interface Inputs {
  readonly list: readonly InputItem[];
  /** No room for another input. */
  readonly full: boolean;
  /** The list as of now, also inside callbacks made by an earlier render. */
  readonly current: () => readonly InputItem[];
  readonly addFiles: (modality: FileModality, files: readonly File[]) => void;
  readonly addRecording: (blob: Blob, mimeType: string, seconds: number) => void;
  /** Adds a text input; false (with the message shown) when it was refused. */
  readonly addText: (text: string) => boolean;
  readonly setWeight: (id: string, weight: number) => void;
  readonly remove: (id: string) => void;
  /** Checks shared by every request; puts the messages next to the controls and says whether to go on. */
  readonly check: (items: readonly InputItem[]) => boolean;
  /** Base64 of every media input (read once per input), in the order shown. */
  readonly toWire: (items: readonly InputItem[]) => Promise<WireInput[]>;
  /** Puts a server error on the input it is about (when it names one) and returns the message. */
  readonly blame: (error: unknown, sent: readonly InputItem[]) => string;
  readonly clearErrors: () => void;
}

/** The message of a server error shown on the input it names, without the JSON path in front. */
function messageForInput(message: string, label: string): string {
  const colon = message.indexOf(': ');
  const path = colon > 0 ? message.slice(0, colon) : '';
  return /^[\w.[\]]+$/.test(path) ? `${label}: ${message.slice(colon + 2)}` : message;
}

/** The inputs panel's state: files, recordings and texts, checked against the server's limits. */
export function useInputs(config: PlaygroundConfig, setError: SetFieldError): Inputs {
  const [inputs, setInputs] = useState<InputItem[]>([]);
  const inputsRef = useRef<InputItem[]>([]);
  const encodedRef = useRef(new Map<string, string>());
  const nextId = useRef(0);
  const recordings = useRef(0);
  inputsRef.current = inputs;

  // Free the previews' blob: URLs when the page goes away.
  useEffect(
    () => () => {
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

  const addRecording = (blob: Blob, mimeType: string, seconds: number): void => {
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

  const addText = (value: string): boolean => {
    const problem = checkText(value);
    if (problem !== undefined) {
      setError('text', problem);
      return false;
    }
    if (roomLeft() <= 0) {
      setError('text', `one request takes at most ${config.limits.maxInputs} inputs`);
      return false;
    }
    const text = value.trim();
    const label = text.length > 40 ? `“${text.slice(0, 40)}…”` : `“${text}”`;
    addItem({ modality: 'text', label, text, size: text.length });
    setError('text', undefined);
    return true;
  };

  const remove = (id: string): void => {
    const item = inputsRef.current.find((i) => i.id === id);
    if (item?.previewUrl !== undefined) URL.revokeObjectURL(item.previewUrl);
    encodedRef.current.delete(id);
    setInputs((list) => list.filter((i) => i.id !== id));
  };

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

  const check = (items: readonly InputItem[]): boolean => {
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

  const blame = (error: unknown, sent: readonly InputItem[]): string => {
    const message = messageOf(error);
    const index = inputIndexOfError(error instanceof ApiError ? error.param : null, message);
    const item = index === undefined ? undefined : sent[index];
    if (item !== undefined) updateInput(item.id, (i) => ({ ...i, error: messageForInput(message, i.label) }));
    return message;
  };

  const clearErrors = (): void => {
    setInputs((list) => (list.some((i) => i.error) ? list.map((i) => ({ ...i, error: undefined })) : list));
  };

  return {
    list: inputs,
    full: inputs.length >= config.limits.maxInputs,
    current: () => inputsRef.current,
    addFiles,
    addRecording,
    addText,
    setWeight: (id, weight) => updateInput(id, (i) => ({ ...i, weight })),
    remove,
    check,
    toWire,
    blame,
    clearErrors,
  };
}
