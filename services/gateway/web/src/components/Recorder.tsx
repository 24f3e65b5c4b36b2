import { useEffect, useRef, useState } from 'react';
import { formatClock } from '../lib/format';

/** Containers tried in order; the server decodes each with ffmpeg. WebM/Opus is the usual one. */
const PREFERRED_TYPES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'];

function pickMimeType(): string {
  if (typeof MediaRecorder.isTypeSupported !== 'function') return '';
  return PREFERRED_TYPES.find((t) => MediaRecorder.isTypeSupported(t)) ?? '';
}

function microphoneError(error: unknown): string {
  const name = error instanceof DOMException ? error.name : '';
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return 'Microphone access was refused; allow it in the browser to record';
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'No microphone was found';
  if (name === 'NotReadableError') return 'The microphone is in use by another program';
  return `The microphone could not be started${error instanceof Error ? ` (${error.message})` : ''}`;
}

interface Session {
  readonly recorder: MediaRecorder;
  readonly stream: MediaStream;
  readonly startedAt: number;
}

/**
 * A record / stop toggle for the microphone (MediaRecorder). The finished recording is handed
 * over as a Blob with its MIME type and length; errors (no permission, no microphone, no
 * MediaRecorder) come back as a message instead.
 */
export function Recorder(props: {
  readonly disabled: boolean;
  readonly describedBy: string;
  readonly onRecorded: (blob: Blob, mimeType: string, seconds: number) => void;
  readonly onError: (message: string | undefined) => void;
}) {
  const [session, setSession] = useState<Session | null>(null);
  const [elapsed, setElapsed] = useState(0);
  const [starting, setStarting] = useState(false);
  const sessionRef = useRef<Session | null>(null);
  const { onRecorded, onError } = props;

  useEffect(() => {
    if (session === null) return undefined;
    const timer = window.setInterval(() => setElapsed((performance.now() - session.startedAt) / 1000), 250);
    return () => window.clearInterval(timer);
  }, [session]);

  // Leaving the page mid-recording releases the microphone.
  useEffect(
    () => () => {
      const s = sessionRef.current;
      if (s === null) return;
      if (s.recorder.state !== 'inactive') s.recorder.stop();
      s.stream.getTracks().forEach((t) => t.stop());
    },
    [],
  );

  const start = async (): Promise<void> => {
    onError(undefined);
    if (typeof MediaRecorder === 'undefined' || navigator.mediaDevices?.getUserMedia === undefined) {
      onError(
        'This browser cannot record audio here (it needs MediaRecorder and a secure origin such as https or localhost)',
      );
      return;
    }
    setStarting(true);
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      onError(microphoneError(error));
      setStarting(false);
      return;
    }
    try {
      const mimeType = pickMimeType();
      const recorder = mimeType === '' ? new MediaRecorder(stream) : new MediaRecorder(stream, { mimeType });
      const chunks: Blob[] = [];
      const startedAt = performance.now();
      recorder.ondataavailable = (event) => {
        if (event.data.size > 0) chunks.push(event.data);
      };
      recorder.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        const type = recorder.mimeType || mimeType || 'audio/webm';
        const blob = new Blob(chunks, { type });
        sessionRef.current = null;
        setSession(null);
        if (blob.size === 0) onError('The recording is empty; try again and speak for a moment');
        else onRecorded(blob, type, (performance.now() - startedAt) / 1000);
      };
      recorder.start(250);
      const next = { recorder, stream, startedAt };
      sessionRef.current = next;
      setElapsed(0);
      setSession(next);
    } catch (error) {
      stream.getTracks().forEach((t) => t.stop());
      onError(microphoneError(error));
    } finally {
      setStarting(false);
    }
  };

  const stop = (): void => {
    const s = sessionRef.current;
    if (s !== null && s.recorder.state !== 'inactive') s.recorder.stop();
  };

  const recording = session !== null;
  return (
    <div className="recorder">
      <button
        type="button"
        className={recording ? 'button-danger' : 'button-secondary'}
        aria-describedby={props.describedBy}
        disabled={(props.disabled && !recording) || starting}
        onClick={() => (recording ? stop() : void start())}
      >
        {recording ? 'Stop recording' : 'Record from microphone'}
      </button>
      <span className="hint" role="status">
        {recording ? `Recording… ${formatClock(elapsed)}` : starting ? 'Asking for the microphone…' : ''}
      </span>
    </div>
  );
}
