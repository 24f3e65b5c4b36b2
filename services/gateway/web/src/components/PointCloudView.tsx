import { useEffect, useRef, useState, type KeyboardEvent, type PointerEvent } from 'react';
import type { PreviewCloud } from '../lib/pointcloud';
import { projectPoints, shade, turn, type Projection, type ViewAngles } from '../lib/projection';

const KEY_STEP = Math.PI / 18; // 10° per arrow key press
const DRAG_SPEED = 0.01; // radians per pixel
const INITIAL_VIEW: ViewAngles = { yaw: 0.6, pitch: 0.35 };

/**
 * Interactive preview of a point cloud on a canvas: drag (mouse, pen or touch) or use the arrow
 * keys to rotate, choose perspective or orthographic projection. Points are painted far to near,
 * brighter when nearer, so the depth reads without any lighting.
 */
export function PointCloudView(props: {
  readonly cloud: PreviewCloud;
  readonly name: string;
  readonly id: string;
}) {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const [view, setView] = useState<ViewAngles>(INITIAL_VIEW);
  const [projection, setProjection] = useState<Projection>('perspective');
  const [size, setSize] = useState({ width: 320, height: 240 });
  const drag = useRef<{ x: number; y: number } | null>(null);

  // Follow the canvas's laid-out width (the column is fluid); draw at device pixel density.
  useEffect(() => {
    const canvas = canvasRef.current;
    if (canvas === null) return undefined;
    const measure = (): void => {
      const width = Math.max(120, Math.round(canvas.clientWidth));
      setSize((s) => (s.width === width ? s : { width, height: Math.round(width * 0.66) }));
    };
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(canvas);
    return () => observer.disconnect();
  }, []);

  useEffect(() => {
    const canvas = canvasRef.current;
    const context = canvas?.getContext('2d');
    if (canvas == null || context == null) return;
    const ratio = Math.min(2, window.devicePixelRatio || 1);
    const w = Math.round(size.width * ratio);
    const h = Math.round(size.height * ratio);
    if (canvas.width !== w) canvas.width = w;
    if (canvas.height !== h) canvas.height = h;
    const image = context.createImageData(w, h);
    const pixels = image.data;
    // Background: a dark blue-grey the bright points stand out on.
    for (let i = 0; i < pixels.length; i += 4) {
      pixels[i] = 16;
      pixels[i + 1] = 24;
      pixels[i + 2] = 32;
      pixels[i + 3] = 255;
    }
    const projected = projectPoints(props.cloud.positions, view, projection, w, h);
    const dot = Math.max(2, Math.round(2 * ratio));
    for (const index of projected.order) {
      const level = shade(projected.depth[index]!);
      const x0 = Math.round(projected.x[index]! - dot / 2);
      const y0 = Math.round(projected.y[index]! - dot / 2);
      for (let dy = 0; dy < dot; dy++) {
        const y = y0 + dy;
        if (y < 0 || y >= h) continue;
        for (let dx = 0; dx < dot; dx++) {
          const x = x0 + dx;
          if (x < 0 || x >= w) continue;
          const p = (y * w + x) * 4;
          pixels[p] = Math.round(level * 0.55);
          pixels[p + 1] = Math.round(level * 0.85);
          pixels[p + 2] = level;
        }
      }
    }
    context.putImageData(image, 0, 0);
  }, [props.cloud, view, projection, size]);

  const onKeyDown = (event: KeyboardEvent<HTMLCanvasElement>): void => {
    const moves: Record<string, [number, number]> = {
      ArrowLeft: [-KEY_STEP, 0],
      ArrowRight: [KEY_STEP, 0],
      ArrowUp: [0, -KEY_STEP],
      ArrowDown: [0, KEY_STEP],
    };
    const move = moves[event.key];
    if (move !== undefined) {
      event.preventDefault();
      setView((v) => turn(v, move[0], move[1]));
    } else if (event.key === 'Home') {
      event.preventDefault();
      setView(INITIAL_VIEW);
    }
  };

  const onPointerDown = (event: PointerEvent<HTMLCanvasElement>): void => {
    drag.current = { x: event.clientX, y: event.clientY };
    event.currentTarget.setPointerCapture(event.pointerId);
  };
  const onPointerMove = (event: PointerEvent<HTMLCanvasElement>): void => {
    const start = drag.current;
    if (start === null) return;
    const dx = event.clientX - start.x;
    const dy = event.clientY - start.y;
    drag.current = { x: event.clientX, y: event.clientY };
    setView((v) => turn(v, dx * DRAG_SPEED, dy * DRAG_SPEED));
  };
  const endDrag = (): void => {
    drag.current = null;
  };

  const degrees = (r: number): number => Math.round((r * 180) / Math.PI);
  const shown =
    props.cloud.count === props.cloud.totalPoints
      ? `${props.cloud.count} points`
      : `${props.cloud.count} of ${props.cloud.totalPoints} points`;
  return (
    <div className="cloud">
      <canvas
        ref={canvasRef}
        className="cloud-canvas"
        tabIndex={0}
        role="img"
        aria-label={`3D preview of ${props.name}: ${shown}, turned ${degrees(view.yaw)}° around and ${degrees(view.pitch)}° up. Arrow keys rotate, Home resets.`}
        aria-describedby={`${props.id}-cloud-hint`}
        onKeyDown={onKeyDown}
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={endDrag}
        onPointerCancel={endDrag}
      />
      <div className="cloud-controls">
        <p className="hint" id={`${props.id}-cloud-hint`}>
          {shown}. Drag, or focus the preview and use the arrow keys, to rotate.
        </p>
        <label className="inline">
          Projection{' '}
          <select value={projection} onChange={(e) => setProjection(e.currentTarget.value as Projection)}>
            <option value="perspective">Perspective</option>
            <option value="orthographic">Orthographic</option>
          </select>
        </label>
      </div>
    </div>
  );
}
