import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';

/** One file of the built playground, held in memory with the headers it is served with. */
export interface StaticFile {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
  /** Vite names bundled assets by content hash, so they never change under their name. */
  readonly immutable: boolean;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** A static site too big for memory is a build mistake (a media file copied into the bundle). */
const MAX_SITE_BYTES = 32 * 1024 * 1024;
const MAX_FILES = 500;

/**
 * The playground bundle, read once at boot: a fixed table of URL path → file. Requests can only
 * ever name a file that was in the folder at boot (no path is joined from user input), so there
 * is nothing to traverse, and a missing file is a plain 404.
 */
export class StaticSite {
  private constructor(private readonly files: ReadonlyMap<string, StaticFile>) {}

  /** Reads every file under `dir`; throws with what to do when the folder is not a built site. */
  static load(dir: string): StaticSite {
    let index: Buffer;
    try {
      index = readFileSync(join(dir, 'index.html'));
    } catch {
      throw new Error(
        `no playground build in ${dir} (index.html missing): run \`npm run build\`, point GATEWAY_PLAYGROUND_DIR at the vite output, or set GATEWAY_PLAYGROUND=false`,
      );
    }
    const files = new Map<string, StaticFile>();
    let total = 0;
    const walk = (folder: string): void => {
      for (const name of readdirSync(folder).sort()) {
        const path = join(folder, name);
        const stat = statSync(path);
        if (stat.isDirectory()) {
          walk(path);
          continue;
        }
        if (!stat.isFile()) continue;
        const urlPath = `/${relative(dir, path).split(sep).join('/')}`;
        const type = CONTENT_TYPES[extname(name).toLowerCase()];
        // Source maps and unknown types stay on disk: only what the page needs is served.
        if (type === undefined) continue;
        total += stat.size;
        if (files.size >= MAX_FILES || total > MAX_SITE_BYTES) {
          throw new Error(
            `the playground folder ${dir} holds more than ${MAX_FILES} files or ${MAX_SITE_BYTES} bytes; it should only hold the vite build`,
          );
        }
        const body = urlPath === '/index.html' ? index : readFileSync(path);
        files.set(urlPath, {
          body,
          contentType: type,
          etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
          immutable: urlPath.startsWith('/assets/'),
        });
      }
    };
    walk(dir);
    return new StaticSite(files);
  }

  /** The file for a request path; `/` is index.html. Query strings must be stripped by the caller. */
  get(urlPath: string): StaticFile | undefined {
    return this.files.get(urlPath === '/' ? '/index.html' : urlPath);
  }

  get size(): number {
    return this.files.size;
  }
}

/**
 * Headers of every playground response. The page loads nothing from elsewhere (no CDN), so the
 * policy allows only this origin; media previews use blob: URLs, the canvas data: images.
 */
export const PLAYGROUND_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob: data:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'permissions-policy': 'microphone=(self), camera=(), geolocation=()',
};
