/**
 * Which frames ImageBind's video loader reads (MODEL_SPEC §2.2 steps 1–4), in exact integer
 * arithmetic: pytorchvideo keeps the duration and the clip times as `Fraction`s and the time base
 * is PyAV's exact `Fraction`, so every pts bound is `ceil` of a rational. Pure; no I/O.
 */

/** An exact time base `num/den` seconds per pts unit. */
export interface TimeBase {
  readonly num: bigint;
  readonly den: bigint;
}

export interface ClipSamplingInput {
  readonly timeBase: TimeBase;
  /** Stream `start_time` in pts units; PyAV's `None` is 0. */
  readonly startPts: bigint | undefined;
  /** Stream `duration` in pts units; when absent the last frame's pts stands in (§2.2 step 1). */
  readonly durationPts: bigint | undefined;
  /** pts of every decoded frame, in decoding output order. */
  readonly framePts: readonly bigint[];
  /** Clip length in seconds (ImageBind: 2, which is also the frames kept per clip). */
  readonly clipDurationSeconds?: number;
  /** Clips per video (ImageBind: 5). */
  readonly clipsPerVideo?: number;
  /** Frames kept per clip by UniformTemporalSubsample (ImageBind: 2). */
  readonly framesPerClip?: number;
}

export interface ClipFrames {
  /** `[start, end)` of the clip window in pts units (start_time already added). */
  readonly ptsWindow: readonly [bigint, bigint];
  /** How many distinct frames fall in the window (T in §2.2 step 4). */
  readonly framesInWindow: number;
  /** Indices into `framePts` of the frames kept, in temporal order (repeats allowed). */
  readonly frameIndices: readonly number[];
}

export interface ClipSampling {
  /** The loader's duration `D` as an exact fraction of seconds. */
  readonly duration: { readonly num: bigint; readonly den: bigint };
  readonly clips: readonly ClipFrames[];
}

/** ceil(p/q) for q > 0, any sign of p. */
function ceilDiv(p: bigint, q: bigint): bigint {
  const quotient = p / q; // truncates toward zero
  return quotient * q < p ? quotient + 1n : quotient;
}

/** `trunc(linspace(0, T−1, n))` as torch computes it in float32 (§2.2 step 4). */
export function uniformTemporalIndices(frames: number, samples: number): number[] {
  if (samples === 1) return [0];
  const last = Math.fround(frames - 1);
  const step = Math.fround(last / (samples - 1));
  const half = Math.floor(samples / 2);
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    // torch.linspace fills the first half from the start and the second half back from the end.
    const v = i < half ? Math.fround(step * i) : Math.fround(last - Math.fround(step * (samples - 1 - i)));
    out.push(Math.min(Math.max(Math.trunc(v), 0), frames - 1));
  }
  return out;
}

/**
 * ConstantClipsPerVideoSampler + `get_clip` + UniformTemporalSubsample. Returns `undefined` frame
 * lists never: a clip window without frames throws (the official loader fails with "No clip found").
 */
export function sampleVideoClips(input: ClipSamplingInput): ClipSampling {
  const c = BigInt(input.clipDurationSeconds ?? 2);
  const clips = input.clipsPerVideo ?? 5;
  const perClip = input.framesPerClip ?? 2;
  const { num, den } = input.timeBase;
  if (num <= 0n || den <= 0n) throw new RangeError('video clip sampler: the time base must be positive');
  if (!Number.isInteger(clips) || clips < 1 || !Number.isInteger(perClip) || perClip < 1 || c <= 0n) {
    throw new RangeError(
      'video clip sampler: clip duration, clip count and frames per clip must be positive integers',
    );
  }
  const sp = input.startPts ?? 0n;

  // Distinct pts, keeping the last frame decoded with each pts (PyAV's dict overwrites), sorted.
  const byPts = new Map<bigint, number>();
  input.framePts.forEach((pts, index) => byPts.set(pts, index));
  const sorted = [...byPts.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

  let durationPts = input.durationPts;
  if (durationPts === undefined) {
    const last = sorted[sorted.length - 1];
    if (last === undefined) throw new RangeError('video clip sampler: no frames and no duration');
    durationPts = last;
  }
  // MODEL_SPEC B8: D = (duration − start_time)·tb, a duration minus a timestamp (reproduced).
  const dNum = (durationPts - sp) * num;
  // M = max(D − c, 0) = A/den; u = M/k; start_i/tb = i·A/(num·k); end_i/tb = start_i/tb + c·den/num.
  const a = dNum - c * den > 0n ? dNum - c * den : 0n;
  const k = BigInt(Math.max(clips - 1, 1));
  const q = num * k;

  const out: ClipFrames[] = [];
  for (let i = 0; i < clips; i++) {
    const bi = BigInt(i);
    const start = ceilDiv(bi * a, q) + sp;
    const end = ceilDiv(bi * a + c * den * k, q) + sp;
    const inWindow = sorted.filter((pts) => pts >= start && pts < end);
    if (inWindow.length === 0) {
      throw new RangeError(`no frames in clip ${i} (pts [${start}, ${end}))`);
    }
    const frameIndices = uniformTemporalIndices(inWindow.length, perClip).map((t) =>
      byPts.get(inWindow[t]!)!,
    );
    out.push({ ptsWindow: [start, end], framesInWindow: inWindow.length, frameIndices });
  }
  return { duration: { num: dNum, den }, clips: out };
}
