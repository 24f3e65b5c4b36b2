/** The page's in-memory model of one input. */
import type { Modality } from './lib/inputs';
import type { PointCloudPreview } from './lib/pointcloud';

export interface InputItem {
  readonly id: string;
  readonly modality: Modality;
  /** File name, "Recording 2", or the start of a text input. */
  readonly label: string;
  readonly weight: number;
  /** The bytes of a media input. */
  readonly blob?: Blob;
  readonly size: number;
  /** data: URL media type (image, video). */
  readonly mediaType?: string;
  /** API `format` (audio, point cloud). */
  readonly format?: string;
  readonly text?: string;
  /** blob: URL for the image, video and audio previews. */
  readonly previewUrl?: string;
  readonly cloud?: PointCloudPreview | 'loading';
  /** The server's complaint about this input in the last request. */
  readonly error?: string;
}

/** Weight slider range: a selected input with weight 0 is refused by the model, so (0, 1]. */
export const WEIGHT = { min: 0.05, max: 1, step: 0.05, initial: 1 } as const;
