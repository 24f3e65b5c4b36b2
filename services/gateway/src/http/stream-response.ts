import type { Response } from 'express';

/**
 * Answers with a stream of text chunks (SSE events, NDJSON lines). The first chunk is awaited before
 * `start` sends the status and headers, so an error up to then (validation, NOT_FOUND, overload)
 * still gets its HTTP status from the error filter. Once started, a client that goes away
 * (`signal`) stops the stream, which closes the work behind it.
 */
export async function streamResponse(
  res: Response,
  signal: AbortSignal,
  chunks: AsyncIterable<string>,
  start: (res: Response) => void,
): Promise<void> {
  const it = chunks[Symbol.asyncIterator]();
  let next = await it.next();
  start(res);
  while (next.done !== true) {
    if (signal.aborted) {
      await it.return?.();
      return;
    }
    res.write(next.value);
    next = await it.next();
  }
  res.end();
}
