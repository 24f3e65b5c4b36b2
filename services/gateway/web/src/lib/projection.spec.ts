import { describe, expect, it } from 'vitest';
import { projectPoints, shade, turn } from './projection';

const cloud = new Float32Array([
  0,
  0,
  1, // nearest to the viewer at the start
  0,
  0,
  -1, // farthest
  1,
  0,
  0, // right
  0,
  1,
  0, // up
]);

describe('point-cloud projection', () => {
  it('maps the unit sphere into the canvas, y up on the cloud and down on the screen', () => {
    const p = projectPoints(cloud, { yaw: 0, pitch: 0 }, 'orthographic', 200, 100);
    // Fitted radius: 0.9 of half the smaller side.
    expect(p.x[2]).toBeCloseTo(100 + 45, 4);
    expect(p.y[2]).toBeCloseTo(50, 4);
    expect(p.y[3]).toBeCloseTo(50 - 45, 4);
    expect(p.depth[0]).toBeCloseTo(0, 6);
    expect(p.depth[1]).toBeCloseTo(1, 6);
  });

  it('orders points far to near', () => {
    const p = projectPoints(cloud, { yaw: 0, pitch: 0 }, 'perspective', 100, 100);
    expect(p.order[0]).toBe(1);
    expect(p.order[p.order.length - 1]).toBe(0);
    for (let i = 1; i < p.order.length; i++) {
      expect(p.depth[p.order[i - 1]!]).toBeGreaterThanOrEqual(p.depth[p.order[i]!]!);
    }
  });

  it('shows near things bigger in perspective and the same size orthographically', () => {
    const near = new Float32Array([1, 0, 0.9]);
    const far = new Float32Array([1, 0, -0.9]);
    const view = { yaw: 0, pitch: 0 };
    const px = (pts: Float32Array, proj: 'perspective' | 'orthographic') =>
      projectPoints(pts, view, proj, 100, 100).x[0]! - 50;
    expect(px(near, 'perspective')).toBeGreaterThan(px(far, 'perspective'));
    expect(px(near, 'orthographic')).toBeCloseTo(px(far, 'orthographic'), 6);
    // The nearest point of the sphere lands exactly on the fitted radius in perspective.
    expect(
      projectPoints(new Float32Array([0, 1, 0]), { yaw: 0, pitch: Math.PI / 2 }, 'perspective', 100, 100)
        .depth[0],
    ).toBeCloseTo(0, 6);
  });

  it('rotates a quarter turn of yaw: the right point comes toward the viewer', () => {
    const p = projectPoints(cloud, { yaw: -Math.PI / 2, pitch: 0 }, 'orthographic', 100, 100);
    expect(p.x[2]).toBeCloseTo(50, 4);
    expect(p.depth[2]).toBeCloseTo(0, 6);
  });

  it('wraps yaw and clamps pitch at the poles', () => {
    const v = turn({ yaw: 0.1, pitch: 1.5 }, -0.2, 0.5);
    expect(v.yaw).toBeCloseTo(Math.PI * 2 - 0.1, 10);
    expect(v.pitch).toBeCloseTo(Math.PI / 2, 10);
    expect(turn({ yaw: 0, pitch: -1.5 }, 0, -1).pitch).toBeCloseTo(-Math.PI / 2, 10);
  });

  it('shades near points brighter than far ones', () => {
    expect(shade(0)).toBe(255);
    expect(shade(1)).toBe(85);
    expect(shade(0.5)).toBeGreaterThan(shade(0.9));
  });
});
