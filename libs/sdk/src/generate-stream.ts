import { gatewayV1 } from '@imagebind-llm/proto';
import { ImageBindError } from './image-bind-error';

/** Why an answer ended: end-of-sequence token, max_new_tokens, or the full 512-position context. */
export type FinishReasonName = 'stop' | 'length' | 'context' | 'unknown';

/** One piece of a streamed answer. */
export interface GenerateChunk {
  /** Text added to the answer since the previous chunk. */
  readonly text: string;
  /** Token ids behind `text`. */
  readonly tokenIds: readonly number[];
  /** Set on the last chunk only. */
  readonly finishReason?: FinishReasonName;
  /** Token counts, speed and sampler seed; set on the last chunk only. */
  readonly usage?: gatewayV1.GenerateUsage;
}

/** A whole answer, as {@link GenerateStream.collect} returns it. */
export interface GenerateResult {
  readonly text: string;
  readonly tokenIds: number[];
  readonly finishReason: FinishReasonName | undefined;
  readonly usage: gatewayV1.GenerateUsage | undefined;
}

export function toChunk(response: gatewayV1.GenerateResponse): GenerateChunk {
  const finishReason = finishReasonName(response.finishReason);
  return {
    text: response.text,
    tokenIds: response.tokenIds,
    ...(finishReason === undefined ? {} : { finishReason }),
    ...(response.usage === undefined ? {} : { usage: response.usage }),
  };
}

function finishReasonName(reason: gatewayV1.FinishReason): FinishReasonName | undefined {
  switch (reason) {
    case gatewayV1.FinishReason.FINISH_REASON_UNSPECIFIED:
      return undefined;
    case gatewayV1.FinishReason.FINISH_REASON_STOP:
      return 'stop';
    case gatewayV1.FinishReason.FINISH_REASON_LENGTH:
      return 'length';
    case gatewayV1.FinishReason.FINISH_REASON_CONTEXT:
      return 'context';
    case gatewayV1.FinishReason.UNRECOGNIZED:
    default:
      // A newer server may add reasons; the answer still ended.
      return 'unknown';
  }
}

/**
 * A streamed answer. Iterate it with `for await` to get chunks as tokens are produced, or await
 * `text()` for the whole answer. The call starts on first use; it can be consumed once. Breaking
 * out of the loop, calling `cancel()` or aborting the call's signal cancels it on the server.
 */
export class GenerateStream implements AsyncIterable<GenerateChunk> {
  private consumed = false;
  private readonly controller = new AbortController();

  /**
   * @param requestId the `x-request-id` the call is sent with.
   * @param start opens the call; it receives the signal that `cancel()` (or the caller's) aborts.
   */
  constructor(
    readonly requestId: string,
    private readonly start: (signal: AbortSignal) => AsyncGenerator<GenerateChunk, void, undefined>,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<GenerateChunk> {
    if (this.consumed) return refuse();
    this.consumed = true;
    return this.start(this.controller.signal);
  }

  /** Cancels the call; a running loop then fails with CANCELLED. */
  cancel(): void {
    this.controller.abort(new Error('GenerateStream.cancel() was called'));
  }

  /** Reads the whole answer. */
  async collect(): Promise<GenerateResult> {
    let text = '';
    const tokenIds: number[] = [];
    let finishReason: FinishReasonName | undefined;
    let usage: gatewayV1.GenerateUsage | undefined;
    for await (const chunk of this) {
      text += chunk.text;
      tokenIds.push(...chunk.tokenIds);
      finishReason = chunk.finishReason ?? finishReason;
      usage = chunk.usage ?? usage;
    }
    return { text, tokenIds, finishReason, usage };
  }

  /** Reads the whole answer and returns its text. */
  async text(): Promise<string> {
    return (await this.collect()).text;
  }
}

function refuse(): AsyncIterator<GenerateChunk> {
  return {
    next: () =>
      Promise.reject(
        new ImageBindError({
          code: 'FAILED_PRECONDITION',
          details: 'this GenerateStream was already consumed; call client.generate() again for a new answer',
        }),
      ),
  };
}
