import { readSource, type MediaSourcePolicy } from '@imagebind-llm/media-source';

/**
 * Fetches `uri` inputs of online requests (ARCHITECTURE §8: every payload has a limit) under the
 * shared media policy of libs/media-source: only https on allow-listed hosts, never a private or
 * loopback address (on the URL and on what the name resolves to), no redirects, a byte cap while
 * streaming and a timeout. Online requests never read files or the object store: those are for
 * batch manifests, read by the workers under their own root.
 */
export class MediaFetcher {
  private readonly policy: MediaSourcePolicy;

  constructor(allowedHosts: readonly string[], maxBytes: number, timeoutMs: number) {
    this.policy = { allowedHosts, maxBytes, timeoutMs };
  }

  /** No fileRoot and no object store in the policy: file paths and s3:// URIs are refused. */
  async fetch(uri: string, field: string, signal: AbortSignal): Promise<Uint8Array> {
    return readSource(uri, this.policy, field, signal);
  }
}
