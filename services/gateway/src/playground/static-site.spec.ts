import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StaticSite } from './static-site';

const dirs: string[] = [];
function site(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'static-site-'));
  dirs.push(dir);
  for (const [path, body] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), body);
  }
  return dir;
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('StaticSite', () => {
  it('serves index.html at / and hashed assets as immutable, with content types', () => {
    const s = StaticSite.load(
      site({
        'index.html': '<!doctype html>',
        'assets/index-Ab12.js': 'console.log(1)',
        'assets/index-Cd34.css': 'body{}',
        'favicon.svg': '<svg/>',
      }),
    );
    const index = s.get('/');
    expect(index?.body.toString()).toBe('<!doctype html>');
    expect(index?.contentType).toBe('text/html; charset=utf-8');
    expect(index?.immutable).toBe(false);
    const js = s.get('/assets/index-Ab12.js');
    expect(js?.contentType).toBe('text/javascript; charset=utf-8');
    expect(js?.immutable).toBe(true);
    expect(s.get('/assets/index-Cd34.css')?.contentType).toBe('text/css; charset=utf-8');
    expect(s.get('/favicon.svg')?.immutable).toBe(false);
    expect(s.size).toBe(4);
  });

  it('gives different files different etags and the same content the same etag', () => {
    const s = StaticSite.load(site({ 'index.html': 'a', 'assets/x.js': 'b', 'assets/y.js': 'b' }));
    expect(s.get('/assets/x.js')?.etag).toBe(s.get('/assets/y.js')?.etag);
    expect(s.get('/')?.etag).not.toBe(s.get('/assets/x.js')?.etag);
  });

  it('knows only the files present at load: no traversal, no source maps or unknown types', () => {
    const s = StaticSite.load(
      site({ 'index.html': 'a', 'assets/app.js': 'b', 'assets/app.js.map': '{}', 'notes.md': '#' }),
    );
    expect(s.get('/assets/app.js.map')).toBeUndefined();
    expect(s.get('/notes.md')).toBeUndefined();
    expect(s.get('/../package.json')).toBeUndefined();
    expect(s.get('/assets/../index.html')).toBeUndefined();
    expect(s.size).toBe(2);
  });

  it('refuses a folder without index.html with what to do', () => {
    expect(() => StaticSite.load(site({ 'assets/app.js': 'b' }))).toThrow(
      /index\.html missing\): run `npm run build`/,
    );
  });
});
