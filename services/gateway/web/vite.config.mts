// Builds the web playground into a static bundle the gateway serves at `/` (issue #8).
// Everything the page needs is bundled: no CDN, no external fonts or scripts at run time.
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  plugins: [react()],
  // The shared request limits and defaults (@imagebind-llm/domain) are bundled from their
  // TypeScript source: the same values the server validates with.
  resolve: { conditions: ['@imagebind-llm/source'] },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The gateway's Content-Security-Policy allows scripts from 'self' only: keep every script in
    // a bundled file (no inline module-preload polyfill) and never inline assets as data: URLs.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
  },
});
