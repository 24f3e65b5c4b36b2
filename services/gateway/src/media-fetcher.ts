import { lookup } from 'node:dns/promises';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { isBlockedAddress, validateRemoteUrl } from './rest/remote-url';

/**
 * Fetches `uri` inputs (ARCHITECTURE §8: every payload has a limit): only `https://` on hosts the
 * operator allow-listed (`example.com`, `*.example.com`), never to a private address (checked on
 * the URL and on what the name resolves to), no redirects, a byte cap while streaming, a timeout.
 */
export class MediaFetcher {
  constructor(
    private readonly allowedHosts: readonly string[],
    private readonly maxBytes: number,
    private readonly timeoutMs: number,
  ) {}

  /** Throws INVALID_INPUT (with `field`) for a URI this gateway will not fetch. */
  check(uri: string, field: string): URL {
    return new URL(validateRemoteUrl(uri, field, this.allowedHosts));
  }

  /** The host name must not resolve to a private or loopback address (DNS can point anywhere). */
  private async checkResolved(url: URL, field: string): Promise<void> {
    const addresses = await lookup(url.hostname, { all: true }).catch(() => []);
    if (addresses.length === 0)
      throw DomainError.invalidInput(`${field}: ${url.hostname} does not resolve`, field);
    const blocked = addresses.find((a) => isBlockedAddress(a.address));
    if (blocked !== undefined) {
      throw DomainError.invalidInput(
        `${field}: ${url.hostname} resolves to ${blocked.address}, a private or loopback address; refused`,
        field,
      );
    }
  }

  async fetch(uri: string, field: string, signal: AbortSignal): Promise<Uint8Array> {
    const url = this.check(uri, field);
    await this.checkResolved(url, field);
    const timeout = AbortSignal.timeout(this.timeoutMs);
    let response: Response;
    try {
      response = await fetch(url, { redirect: 'error', signal: AbortSignal.any([signal, timeout]) });
    } catch (error) {
      throw DomainError.invalidInput(
        `${field}: fetching ${url.host} failed (${error instanceof Error ? error.message : String(error)})`,
        field,
      );
    }
    if (!response.ok || response.body === null) {
      throw DomainError.invalidInput(`${field}: ${url.host} answered HTTP ${response.status}`, field);
    }
    const declared = Number(response.headers.get('content-length') ?? '0');
    if (declared > this.maxBytes) {
      throw new DomainError(
        ErrorCode.PayloadTooLarge,
        `${field}: ${declared} bytes exceed the limit of ${this.maxBytes}`,
        { field },
      );
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      total += chunk.length;
      if (total > this.maxBytes) {
        throw new DomainError(
          ErrorCode.PayloadTooLarge,
          `${field}: more than ${this.maxBytes} bytes; refused`,
          { field },
        );
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }
}
