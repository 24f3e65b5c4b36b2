/**
 * The math of the point-cloud preview: rotate the cloud by yaw (about the vertical axis) and
 * pitch (about the horizontal axis), then project it orthographically or in perspective onto a
 * canvas of the given size. Pure functions; the canvas component only paints the result.
 */

export interface ViewAngles {
  /** Rotation about the screen's vertical axis, radians. */
  readonly yaw: number;
  /** Rotation about the screen's horizontal axis, radians, kept within ±90°. */
  readonly pitch: number;
}

export type Projection = 'perspective' | 'orthographic';

export interface ProjectedPoints {
  readonly x: Float32Array;
  readonly y: Float32Array;
  /** 0 for the nearest possible point (on the unit sphere, facing the viewer), 1 for the farthest. */
  readonly depth: Float32Array;
  /** Point indices from far to near: painting in this order lets near points cover far ones. */
  readonly order: Uint32Array;
}

/** Distance of the perspective camera from the centre of the (unit-sphere) cloud. */
export const CAMERA_DISTANCE = 3;

const HALF_PI = Math.PI / 2;

/** Turns the view by a drag or a key press; pitch stops at straight up and straight down. */
export function turn(view: ViewAngles, dYaw: number, dPitch: number): ViewAngles {
  const tau = Math.PI * 2;
  let yaw = (view.yaw + dYaw) % tau;
  if (yaw < 0) yaw += tau;
  const pitch = Math.max(-HALF_PI, Math.min(HALF_PI, view.pitch + dPitch));
  return { yaw, pitch };
}

/**
 * Projects unit-sphere points (xyz triples) into canvas pixels. The screen's y axis points down,
 * the cloud's up; the viewer looks along -z. Both projections fit the unit sphere into the
 * smaller side of the canvas with a small margin, so a cloud never leaves the frame.
 */
export function projectPoints(
  positions: Float32Array,
  view: ViewAngles,
  projection: Projection,
  width: number,
  height: number,
): ProjectedPoints {
  const n = Math.floor(positions.length / 3);
  const cy = Math.cos(view.yaw);
  const sy = Math.sin(view.yaw);
  const cp = Math.cos(view.pitch);
  const sp = Math.sin(view.pitch);
  const radius = (Math.min(width, height) / 2) * 0.9;
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  const depth = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const px = positions[i * 3]!;
    const py = positions[i * 3 + 1]!;
    const pz = positions[i * 3 + 2]!;
    // Yaw about y, then pitch about x.
    const x1 = cy * px + sy * pz;
    const z1 = -sy * px + cy * pz;
    const y2 = cp * py - sp * z1;
    const z2 = sp * py + cp * z1;
    let scale = radius;
    if (projection === 'perspective') {
      // The nearest point of the unit sphere (z = 1) lands exactly on the fitted radius.
      scale = (radius * (CAMERA_DISTANCE - 1)) / (CAMERA_DISTANCE - z2);
    }
    x[i] = width / 2 + x1 * scale;
    y[i] = height / 2 - y2 * scale;
    depth[i] = Math.max(0, Math.min(1, (1 - z2) / 2));
  }
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => depth[b]! - depth[a]!);
  return { x, y, depth, order };
}

/** Grey level (0–255) of a point at `depth`: near points bright, far points dim but visible. */
export function shade(depth: number): number {
  return Math.round(255 - 170 * Math.max(0, Math.min(1, depth)));
}
