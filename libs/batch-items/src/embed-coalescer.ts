import { randomUUID } from 'node:crypto';
import {
  ImageBindError,
  isImageBindError,
  type CallOptions,
  type EmbedManyResult,
  type EmbedRequest,
  type EmbedResult,
  type ImageBindClient,
  type MultimodalInput,
} from '@imagebind-llm/client';
import type { ApiCall } from './item-processor';
import { sdkCall } from './sdk-call';

/** How {@link EmbedCoalescer} groups embeds into EmbedMany calls. */
export interface EmbedCoalescingOptions {
  /**
   * Most embeds in one EmbedMany call; 1 sends each alone with Embed. Default 16 (the worker's
   * default concurrency). Keep it within the gateway's GATEWAY_EMBED_MANY_MAX_REQUESTS and the
   * worker key's rate-limit burst: a call refused for its size is split in halves and resent.
   */
  readonly maxRequests?: number;
  /**
   * How long the first embed of a call waits for others, in milliseconds. 0 (the default) waits
   * only until the event loop's current turn is over (setImmediate): the items of a queue job
   * start together, and the ones whose slots free up when a call returns also start together.
   */
  readonly windowMs?: number;
  /**
   * Most inline bytes (media, text, vectors) in one call, so a call stays well under the gRPC
   * message limits (64 MiB by default). An embed larger than this is sent alone. Default 8 MiB.
   */
  readonly maxBytes?: number;
}

export const DEFAULT_EMBED_COALESCING = { maxRequests: 16, windowMs: 0, maxBytes: 8 * 1024 * 1024 } as const;

/**
 * Embeds whose deadlines lie further apart than this do not share a call: the call carries the
 * earliest deadline of its embeds, so an embed may end at most this much before its own. The
 * worker gives every item the same timeout (ITEM_TIMEOUT_MS), so its embeds differ by the few
 * milliseconds between their starts and always qualify.
 */
export const DEADLINE_SLACK_MS = 1_000;

/** One embed waiting for, or riding in, an EmbedMany call. */
interface Member {
  readonly request: EmbedRequest;
  /** Absolute, in epoch milliseconds. */
  readonly deadline: number;
  readonly signal: AbortSignal;
  readonly trace: Readonly<Record<string, string>> | undefined;
  readonly bytes: number;
  readonly resolve: (result: EmbedResult) => void;
  readonly reject: (error: unknown) => void;
  /** The call it rides in, once sent. */
  call: InFlight | undefined;
  settled: boolean;
  onAbort: () => void;
}

/** An EmbedMany call on the wire. */
interface InFlight {
  readonly requestId: string;
  readonly controller: AbortController;
  /** Members not yet settled; the call is cancelled when none is left. */
  live: number;
}

/**
 * Gathers the embeds of concurrent batch items into EmbedMany calls (issue #16): one gRPC call and
 * one admission for several items costs the worker and the gateway much less CPU than a call per
 * item. Each caller's promise ends exactly as `client.embed` would have ended it: its own
 * EmbedResult, or the ImageBindError Embed would have answered its request with (a bad item fails
 * alone), or, when the call as a whole fails (rate limit, UNAVAILABLE after the SDK's retries, the
 * deadline), that call's error.
 *
 * - Abort: an embed whose signal aborts before its call is sent leaves the group; after, it is
 *   rejected at once (CANCELLED, as the SDK's), and the call is cancelled once all of its embeds
 *   are.
 * - Deadline: a call carries the earliest deadline of its embeds, and embeds more than
 *   {@link DEADLINE_SLACK_MS} apart do not share one.
 * - Trace context: a call carries the first embed's (one call has one parent span).
 * - A gateway without EmbedMany (UNIMPLEMENTED: an older one during a rollout) gets every embed
 *   from then on as Embed, the refused ones included.
 */
export class EmbedCoalescer {
  private readonly windowMs: number;
  private readonly maxBytes: number;
  private maxRequests: number;
  /** Set once the gateway answered UNIMPLEMENTED: every embed then goes alone, with Embed. */
  private embedOnly = false;
  private pending: Member[] = [];
  private pendingBytes = 0;
  private earliest = Infinity;
  private latest = -Infinity;
  /** Cancels the scheduled flush, while one is scheduled. */
  private cancelFlush: (() => void) | undefined;

  constructor(
    private readonly client: Pick<ImageBindClient, 'embed' | 'embedMany'>,
    options: EmbedCoalescingOptions = {},
  ) {
    const settings = { ...DEFAULT_EMBED_COALESCING, ...options };
    for (const [name, value] of Object.entries(settings)) {
      if (!Number.isFinite(value) || value < (name === 'windowMs' ? 0 : 1)) {
        throw new RangeError(
          `embed coalescing: ${name} must be a number >= ${name === 'windowMs' ? 0 : 1}, got ${value}`,
        );
      }
    }
    this.maxRequests = Math.floor(settings.maxRequests);
    this.windowMs = settings.windowMs;
    this.maxBytes = settings.maxBytes;
  }

  /** Embeds `request` (in a shared call when others come along), with the item's call settings. */
  async embed(request: EmbedRequest, call: ApiCall): Promise<EmbedResult> {
    const bytes = inlineBytes(request.inputs);
    if (this.embedOnly || this.maxRequests <= 1 || bytes > this.maxBytes) {
      return this.client.embed(request, sdkCall(call));
    }
    if (call.signal.aborted) throw ImageBindError.aborted(call.signal, randomUUID());
    return new Promise<EmbedResult>((resolve, reject) => {
      const member: Member = {
        request,
        deadline: Date.now() + call.timeoutMs,
        signal: call.signal,
        trace: call.trace,
        bytes,
        resolve,
        reject,
        call: undefined,
        settled: false,
        onAbort: () => this.abort(member),
      };
      call.signal.addEventListener('abort', member.onAbort, { once: true });
      this.enqueue(member);
    });
  }

  private enqueue(member: Member): void {
    const earliest = Math.min(this.earliest, member.deadline);
    const latest = Math.max(this.latest, member.deadline);
    if (
      this.pending.length > 0 &&
      (latest - earliest > DEADLINE_SLACK_MS || this.pendingBytes + member.bytes > this.maxBytes)
    ) {
      this.flush();
    }
    this.pending.push(member);
    this.pendingBytes += member.bytes;
    this.earliest = Math.min(this.earliest, member.deadline);
    this.latest = Math.max(this.latest, member.deadline);
    if (this.pending.length >= this.maxRequests) this.flush();
    else if (this.cancelFlush === undefined) {
      const flush = (): void => this.flush();
      if (this.windowMs > 0) {
        const timer = setTimeout(flush, this.windowMs);
        this.cancelFlush = () => clearTimeout(timer);
      } else {
        const immediate = setImmediate(flush);
        this.cancelFlush = () => clearImmediate(immediate);
      }
    }
  }

  /** Sends what is waiting (aborted members already left). */
  private flush(): void {
    this.cancelFlush?.();
    this.cancelFlush = undefined;
    const members = this.pending.filter((m) => !m.settled);
    this.pending = [];
    this.pendingBytes = 0;
    this.earliest = Infinity;
    this.latest = -Infinity;
    for (let i = 0; i < members.length; i += this.maxRequests) {
      void this.send(members.slice(i, i + this.maxRequests));
    }
  }

  private async send(members: Member[]): Promise<void> {
    if (members.length === 0) return;
    const call: InFlight = {
      requestId: randomUUID(),
      controller: new AbortController(),
      live: members.length,
    };
    for (const m of members) m.call = call;
    const deadline = Math.min(...members.map((m) => m.deadline));
    const trace = members[0]!.trace;
    const options: CallOptions = {
      signal: call.controller.signal,
      timeoutMs: Math.max(1, deadline - Date.now()),
      requestId: call.requestId,
      ...(trace === undefined ? {} : { traceContext: { ...trace } }),
    };
    let results: EmbedManyResult[];
    try {
      results = await this.client.embedMany(
        members.map((m) => m.request),
        options,
      );
    } catch (error) {
      this.callFailed(members, error);
      return;
    }
    members.forEach((m, i) => {
      const outcome = results[i]!;
      if (outcome.ok) settle(m, () => m.resolve(outcome.result));
      else settle(m, () => m.reject(outcome.error));
    });
  }

  private callFailed(members: Member[], error: unknown): void {
    const open = members.filter((m) => !m.settled);
    if (isImageBindError(error) && error.code === 'UNIMPLEMENTED') {
      // An older gateway: Embed, for these and every embed after them.
      this.embedOnly = true;
      for (const m of open) this.sendAlone(m);
      return;
    }
    if (
      isImageBindError(error) &&
      error.code === 'INVALID_ARGUMENT' &&
      error.field === 'requests' &&
      members.length > 1
    ) {
      // More requests than the gateway takes in one call (its limit, or the key's burst): halve.
      this.maxRequests = Math.max(1, Math.min(this.maxRequests, Math.floor(members.length / 2)));
      for (const m of open) m.call = undefined;
      if (this.maxRequests <= 1) for (const m of open) this.sendAlone(m);
      else
        for (let i = 0; i < open.length; i += this.maxRequests)
          void this.send(open.slice(i, i + this.maxRequests));
      return;
    }
    for (const m of open) settle(m, () => m.reject(error));
  }

  /** Hands a member over to a plain Embed call, which then owns its abort and deadline. */
  private sendAlone(m: Member): void {
    m.signal.removeEventListener('abort', m.onAbort);
    m.call = undefined;
    this.client
      .embed(m.request, {
        signal: m.signal,
        timeoutMs: Math.max(1, m.deadline - Date.now()),
        ...(m.trace === undefined ? {} : { traceContext: { ...m.trace } }),
      })
      .then(
        (result) => settle(m, () => m.resolve(result)),
        (error: unknown) => settle(m, () => m.reject(error)),
      );
  }

  private abort(m: Member): void {
    if (m.settled) return;
    const call = m.call;
    if (call === undefined) {
      const at = this.pending.indexOf(m);
      if (at >= 0) {
        this.pending.splice(at, 1);
        this.pendingBytes -= m.bytes;
      }
      settle(m, () => m.reject(ImageBindError.aborted(m.signal, randomUUID())));
      return;
    }
    settle(m, () => m.reject(ImageBindError.aborted(m.signal, call.requestId)));
  }
}

/** Ends a member's promise once; a member riding in a call counts down that call's live members. */
function settle(m: Member, end: () => void): void {
  if (m.settled) return;
  m.settled = true;
  m.signal.removeEventListener('abort', m.onAbort);
  const call = m.call;
  end();
  if (call !== undefined && --call.live === 0 && m.signal.aborted) call.controller.abort(m.signal.reason);
}

/** Roughly the bytes an embed puts on the wire: its inline media, text and vectors. */
function inlineBytes(inputs: readonly MultimodalInput[] | undefined): number {
  let bytes = 0;
  for (const input of inputs ?? []) {
    const source = input?.source;
    switch (source?.$case) {
      case 'content':
        bytes += source.value.byteLength;
        break;
      case 'text':
      case 'uri':
        bytes += Buffer.byteLength(source.value);
        break;
      case 'embedding':
        bytes += source.value.vector?.data.byteLength ?? 0;
        break;
      case undefined:
        break;
    }
  }
  return bytes;
}
