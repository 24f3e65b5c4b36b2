// ESLint flat config: type-aware TypeScript rules (async correctness above all) and the Nx module
// boundaries that keep the architecture honest (STYLE.md "Layout shows the architecture").
import js from '@eslint/js';
import nx from '@nx/eslint-plugin';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

const ORT = ['onnxruntime-node', 'onnxruntime-common', 'onnxruntime-web'];
const BULLMQ = ['bullmq'];
const QDRANT = ['@qdrant/*'];

/**
 * Tags: every project has exactly one `type:*` and one `adapter:*` tag (a test checks this).
 * - type:service may use libs only, never another service;
 * - type:lib may use libs only; type:test (libs/testing) is for test files only;
 * - adapter:* says which heavy runtime a project may import: only libs/inference touches
 *   onnxruntime-node, only libs/queue touches bullmq, only the retriever touches @qdrant/*.
 */
function depConstraints({ tests }) {
  const libs = tests ? ['type:lib', 'type:test'] : ['type:lib'];
  return [
    { sourceTag: 'type:service', onlyDependOnLibsWithTags: libs },
    { sourceTag: 'type:lib', onlyDependOnLibsWithTags: libs },
    { sourceTag: 'type:test', onlyDependOnLibsWithTags: ['type:lib', 'type:test'] },
    { sourceTag: 'type:tool', onlyDependOnLibsWithTags: ['type:lib', 'type:test'] },
    { sourceTag: 'adapter:none', bannedExternalImports: [...ORT, ...BULLMQ, ...QDRANT] },
    { sourceTag: 'adapter:onnx', bannedExternalImports: [...BULLMQ, ...QDRANT] },
    { sourceTag: 'adapter:queue', bannedExternalImports: [...ORT, ...QDRANT] },
    { sourceTag: 'adapter:qdrant', bannedExternalImports: [...ORT, ...BULLMQ] },
  ];
}

const boundaries = (tests) => [
  'error',
  {
    enforceBuildableLibDependency: false,
    allow: [],
    depConstraints: depConstraints({ tests }),
  },
];

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      '**/node_modules/**',
      '.nx/**',
      'coverage/**',
      'test-results/**',
      'libs/proto/src/generated/**',
      // Deliberate violations, linted by tools/lint-fixtures/lint-fixtures.spec.ts.
      'tools/lint-fixtures/boundary/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: {
      parserOptions: {
        project: [
          './libs/*/tsconfig.json',
          './services/*/tsconfig.json',
          './tools/cli/tsconfig.json',
          './tsconfig.spec.json',
          './tools/lint-fixtures/tsconfig.json',
          './tools/load/tsconfig.json',
          './services/gateway/web/tsconfig.json',
          './services/gateway/web/tsconfig.node.json',
        ],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { '@nx': nx },
    rules: {
      '@nx/enforce-module-boundaries': boundaries(false),
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      '@typescript-eslint/require-await': 'error',
      '@typescript-eslint/promise-function-async': ['error', { checkArrowFunctions: false }],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'read configuration through @imagebind-llm/config' },
      ],
    },
  },
  {
    files: [
      '**/*.spec.ts',
      '**/*.int-spec.ts',
      'libs/*/src/**/testing/**/*.ts',
      'libs/testing/**/*.ts',
      'tools/test/**/*.ts',
    ],
    ignores: ['tools/lint-fixtures/boundary/**'],
    rules: {
      '@nx/enforce-module-boundaries': boundaries(true),
      // Tests start processes with a chosen environment.
      'no-restricted-properties': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    // The config library is the one place that reads process.env.
    files: ['libs/config/src/**/*.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // Nest resolves constructor parameter types at run time: they must stay value imports.
    files: ['services/*/src/**/*.ts', 'libs/grpc-kit/src/nest-host.ts'],
    rules: { '@typescript-eslint/consistent-type-imports': 'off' },
  },
  {
    files: ['**/*.mjs', '**/*.mts', '**/*.js', '**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      globals: {
        console: 'readonly',
        process: 'readonly',
        URL: 'readonly',
        fetch: 'readonly',
        setTimeout: 'readonly',
      },
    },
  },
  {
    // CommonJS launchers (e.g. tools/cli/bin/ibllm.js).
    files: ['**/bin/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', __dirname: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  prettier,
);
