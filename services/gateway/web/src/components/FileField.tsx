import type { ReactNode } from 'react';
import { formatBytes, shortList } from '../lib/format';
import type { FileModality } from '../hooks/use-inputs';
import { FieldError } from './FieldError';

/** A file picker for one modality, with the accepted formats, the size limit and its message. */
export function FileField(props: {
  readonly modality: FileModality;
  readonly label: string;
  /** The `accept` attribute. */
  readonly accept: string;
  /** The formats listed in the hint. */
  readonly accepted: readonly string[];
  readonly maxBytes: number;
  readonly disabled: boolean;
  readonly error: string | undefined;
  readonly onFiles: (files: readonly File[]) => void;
  /** More controls for the same modality (the recorder), shown above the message. */
  readonly children?: ReactNode;
}) {
  const { modality } = props;
  const id = `file-${modality.replace('_', '-')}`;
  return (
    <div className="file-field">
      <label htmlFor={id}>{props.label}</label>
      <input
        id={id}
        type="file"
        accept={props.accept}
        multiple
        disabled={props.disabled}
        aria-describedby={`${id}-hint ${modality}-error`}
        aria-invalid={props.error !== undefined}
        onChange={(event) => {
          const files = Array.from(event.currentTarget.files ?? []);
          // Clear the control so choosing the same file again still counts as a change.
          event.currentTarget.value = '';
          if (files.length > 0) props.onFiles(files);
        }}
      />
      <p className="hint" id={`${id}-hint`}>
        {shortList(props.accepted, 8)}; up to {formatBytes(props.maxBytes)}
      </p>
      {props.children}
      <FieldError id={`${modality}-error`} message={props.error} />
    </div>
  );
}
