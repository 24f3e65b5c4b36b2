/**
 * Incremental parser for a `text/event-stream` body (the WHATWG "event stream" rules, reduced to
 * what the chat API sends): feed it decoded text as it arrives, in chunks of any size, and it
 * returns the `data` of every event that is complete. Lines may end in LF, CRLF or CR, even when
 * a CRLF pair is split across two chunks; `:` lines are comments; several `data:` lines of one
 * event are joined with a newline. An event still open when the stream ends is dropped, as
 * browsers' EventSource does.
 */
export class SseParser {
  private pending = '';
  private data: string[] = [];
  private afterCr = false;

  /** Adds the next piece of the stream; returns the payloads of the events it completed. */
  push(chunk: string): string[] {
    const events: string[] = [];
    let text = chunk;
    if (this.afterCr && text.startsWith('\n')) text = text.slice(1);
    this.afterCr = false;
    const buffer = this.pending + text;
    let lineStart = 0;
    for (let i = 0; i < buffer.length; i++) {
      const code = buffer.charCodeAt(i);
      if (code !== 0x0a && code !== 0x0d) continue;
      this.takeLine(buffer.slice(lineStart, i), events);
      if (code === 0x0d) {
        if (i + 1 < buffer.length) {
          if (buffer.charCodeAt(i + 1) === 0x0a) i += 1;
        } else {
          this.afterCr = true;
        }
      }
      lineStart = i + 1;
    }
    this.pending = buffer.slice(lineStart);
    return events;
  }

  private takeLine(line: string, events: string[]): void {
    if (line === '') {
      if (this.data.length > 0) events.push(this.data.join('\n'));
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
  }
}
