import { useState } from 'react';
import type { FieldErrors, SetFieldError } from '../hooks/use-field-errors';
import type { Inputs } from '../hooks/use-inputs';
import type { PlaygroundConfig } from '../lib/config';
import { FieldError } from './FieldError';
import { FileField } from './FileField';
import { InputCard } from './InputCard';
import { Recorder } from './Recorder';

const dotted = (extensions: readonly string[]): string[] => extensions.map((e) => `.${e}`);

/** Adding inputs of every modality (files, a recording, text) and the list of those selected. */
export function InputsPanel(props: {
  readonly config: PlaygroundConfig;
  readonly inputs: Inputs;
  readonly errors: FieldErrors;
  readonly setError: SetFieldError;
}) {
  const { config, inputs, errors, setError } = props;
  const [textInput, setTextInput] = useState('');
  const { full } = inputs;
  const maxBytes = config.limits.maxInputBytes;
  const addText = (): void => {
    if (inputs.addText(textInput)) setTextInput('');
  };
  return (
    <section className="panel" aria-labelledby="inputs-title">
      <h2 id="inputs-title">Inputs</h2>
      <p className="hint">
        Each input is embedded by ImageBind and mixed by its weight. Up to {config.limits.maxInputs} per
        request.
      </p>
      <div className="add-grid">
        <FileField
          modality="image"
          label="Image file"
          accept={config.formats.image.join(',')}
          accepted={config.formats.image}
          maxBytes={maxBytes}
          disabled={full}
          error={errors.image}
          onFiles={(files) => inputs.addFiles('image', files)}
        />
        <FileField
          modality="video"
          label="Video file"
          accept={config.formats.video.join(',')}
          accepted={config.formats.video}
          maxBytes={maxBytes}
          disabled={full}
          error={errors.video}
          onFiles={(files) => inputs.addFiles('video', files)}
        />
        <FileField
          modality="audio"
          label="Audio file"
          accept={dotted(config.formats.audio).join(',')}
          accepted={dotted(config.formats.audio)}
          maxBytes={maxBytes}
          disabled={full}
          error={errors.audio}
          onFiles={(files) => inputs.addFiles('audio', files)}
        >
          <Recorder
            disabled={full}
            describedBy="audio-error"
            onRecorded={inputs.addRecording}
            onError={(message) => setError('audio', message)}
          />
        </FileField>
        <FileField
          modality="point_cloud"
          label="Point cloud file"
          accept={dotted(config.formats.pointCloud).join(',')}
          accepted={dotted(config.formats.pointCloud)}
          maxBytes={maxBytes}
          disabled={full}
          error={errors.point_cloud}
          onFiles={(files) => inputs.addFiles('point_cloud', files)}
        />
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
        Selected inputs <span className="hint">({inputs.list.length})</span>
      </h3>
      {inputs.list.length === 0 ? <p className="hint">None yet.</p> : null}
      <ul className="input-list" aria-label="Selected inputs">
        {inputs.list.map((item) => (
          <InputCard
            key={item.id}
            item={item}
            onWeight={(weight) => inputs.setWeight(item.id, weight)}
            onRemove={() => inputs.remove(item.id)}
          />
        ))}
      </ul>
      <FieldError id="inputs-error" message={errors.inputs} />
    </section>
  );
}
