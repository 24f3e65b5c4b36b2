import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// Test tiers (STYLE.md): *.spec.ts are small (no network), *.int-spec.ts are medium (real gRPC on
// loopback, real processes, real Redis). TEST_TIER=small|medium narrows a run; default runs all.
const tier = process.env['TEST_TIER'] ?? 'all';
if (!['small', 'medium', 'all'].includes(tier)) {
  throw new Error(`TEST_TIER=${tier} is not a tier: use small, medium or all (the default)`);
}
const small = [
  'libs/*/src/**/*.spec.ts',
  'services/*/src/**/*.spec.ts',
  'services/*/web/src/**/*.spec.ts',
  'tools/**/*.spec.ts',
];
const medium = [
  'libs/*/src/**/*.int-spec.ts',
  'services/*/src/**/*.int-spec.ts',
  'services/*/test/**/*.int-spec.ts',
  'tools/*/test/**/*.int-spec.ts',
];

export default defineConfig({
  // SWC instead of esbuild so decorators keep their metadata, as under tsc (Nest DI relies on it).
  plugins: [
    swc.vite({
      jsc: {
        parser: { syntax: 'typescript', decorators: true },
        transform: { legacyDecorator: true, decoratorMetadata: true },
        target: 'es2022',
      },
    }),
  ],
  resolve: { conditions: ['@imagebind-llm/source', 'node', 'import', 'default'] },
  ssr: { resolve: { conditions: ['@imagebind-llm/source', 'node', 'import', 'default'] } },
  test: {
    include: tier === 'small' ? small : tier === 'medium' ? medium : [...small, ...medium],
    exclude: ['**/node_modules/**', '**/dist/**'],
    globals: false,
    environment: 'node',
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores in CI: keep process-heavy medium tests from starving each other.
    maxWorkers: 2,
  },
});
