import { useId, type ReactNode } from 'react';

interface SliderProps {
  readonly label: ReactNode;
  readonly value: number;
  readonly min: number;
  readonly max: number;
  readonly step: number;
  readonly onChange: (value: number) => void;
  /** How the current value is shown next to the label. */
  readonly format?: (value: number) => string;
  readonly disabled?: boolean;
  readonly hint?: string;
  /** A stable id (tests and labels refer to it); a generated one otherwise. */
  readonly id?: string;
}

/** A labelled range input with its value shown; arrow keys, Page Up/Down, Home and End work natively. */
export function Slider(props: SliderProps) {
  const generated = useId();
  const id = props.id ?? `slider${generated}`;
  const format = props.format ?? ((v: number) => String(v));
  const hintId = props.hint === undefined ? undefined : `${id}-hint`;
  return (
    <div className="slider">
      <div className="slider-head">
        <label htmlFor={id}>{props.label}</label>
        <output htmlFor={id} aria-hidden="true">
          {format(props.value)}
        </output>
      </div>
      <input
        id={id}
        type="range"
        min={props.min}
        max={props.max}
        step={props.step}
        value={props.value}
        disabled={props.disabled}
        aria-valuetext={format(props.value)}
        aria-describedby={hintId}
        onChange={(e) => props.onChange(Number(e.currentTarget.value))}
      />
      {props.hint === undefined ? null : (
        <p className="hint" id={hintId}>
          {props.hint}
        </p>
      )}
    </div>
  );
}
