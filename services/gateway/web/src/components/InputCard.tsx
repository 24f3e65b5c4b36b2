import { MODALITY_LABEL } from '../lib/inputs';
import { formatBytes } from '../lib/format';
import { WEIGHT, type InputItem } from '../model';
import { FieldError } from './FieldError';
import { PointCloudView } from './PointCloudView';
import { Slider } from './Slider';

function Preview({ item }: { readonly item: InputItem }) {
  switch (item.modality) {
    case 'image':
      return <img className="preview-media" src={item.previewUrl} alt={`Preview of ${item.label}`} />;
    case 'video':
      return (
        <video
          className="preview-media"
          src={item.previewUrl}
          controls
          muted
          preload="metadata"
          aria-label={`Preview of ${item.label}`}
        />
      );
    case 'audio':
      return (
        <audio className="preview-audio" src={item.previewUrl} controls aria-label={`Play ${item.label}`} />
      );
    case 'text':
      return <blockquote className="preview-text">{item.text}</blockquote>;
    case 'point_cloud': {
      const cloud = item.cloud;
      if (cloud === undefined || cloud === 'loading') return <p className="hint">Reading the point cloud…</p>;
      if (cloud.kind === 'points')
        return <PointCloudView cloud={cloud.cloud} name={item.label} id={item.id} />;
      if (cloud.kind === 'unsupported') {
        return (
          <p className="note">
            No preview for this format ({cloud.reason}); the file is still sent and read by the server.
          </p>
        );
      }
      return (
        <p className="note">No preview: {cloud.message}. The server will check the file when it is sent.</p>
      );
    }
  }
}

/** One selected input: what it is, its preview, its weight and a way to remove it. */
export function InputCard(props: {
  readonly item: InputItem;
  readonly onWeight: (weight: number) => void;
  readonly onRemove: () => void;
}) {
  const { item } = props;
  const headingId = `${item.id}-name`;
  return (
    <li className="input-card" aria-labelledby={headingId} data-modality={item.modality}>
      <div className="input-card-head">
        <span className="badge">{MODALITY_LABEL[item.modality]}</span>
        <span className="input-name" id={headingId} title={item.label}>
          {item.label}
        </span>
        {item.modality === 'text' ? null : <span className="hint">{formatBytes(item.size)}</span>}
        <button type="button" className="button-quiet" onClick={props.onRemove}>
          Remove<span className="visually-hidden"> {item.label}</span>
        </button>
      </div>
      <Preview item={item} />
      <Slider
        id={`${item.id}-weight`}
        label={
          <>
            Weight<span className="visually-hidden"> of {item.label}</span>
          </>
        }
        min={WEIGHT.min}
        max={WEIGHT.max}
        step={WEIGHT.step}
        value={item.weight}
        format={(v) => v.toFixed(2)}
        onChange={props.onWeight}
      />
      <FieldError id={`${item.id}-error`} message={item.error} />
    </li>
  );
}
