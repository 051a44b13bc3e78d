import { builtinModules } from 'node:module';
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/**
 * The import boundaries of docs/architecture.md ("Parts", "Seams"), as lint errors rather than
 * good intentions. Every block restates the self-import ban because, in a flat config, the
 * last block that sets a rule for a file replaces its options instead of merging them.
 */
const selfImport = {
  regex: '^longpoll-kit(/|$)',
  message: 'Inside src/, import the module by its relative path: the package name resolves to dist/.',
};

/** `no-restricted-imports` (the typed variant, for `allowTypeImports`) with these patterns. */
function restrictImports(files, ...patterns) {
  return {
    files,
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [selfImport, ...patterns] }],
    },
  };
}

/** A relative import that is none of `allowed` (specifiers as written, e.g. '../index.js'). */
function relativeExcept(allowed, message) {
  // `^\.` takes the first character; the lookahead names what may follow it.
  const rests = allowed.map((specifier) => `${specifier.slice(1).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  return { regex: `^\\.(?!${rests.join('|')})`, message };
}

const adapterBoundary =
  'Adapters import only ../index.js, ../http/protocol.js, ../http/connection.js (Node-based adapters) and framework types; Express may also import ./node.js (docs/architecture.md, "Seams").';
/** Frameworks (and every other package) are optional peers: adapters import their types only. */
const typesOnly = {
  regex: '^[^.]',
  allowTypeImports: true,
  message: 'Adapters import packages (express, koa, fastify, node:http…) as `import type` only: frameworks are optional peer dependencies.',
};

const browserOnly = 'longpoll-kit/client runs in browsers: no Node built-ins or Node-only packages.';
const nodeOnly = [...builtinModules.filter((name) => !name.startsWith('_')), 'ioredis', 'express', 'koa', 'fastify', 'pg'];

export default defineConfig(
  // Generated or scratch output (ESLint does not read .gitignore).
  // test/attack/: scripts run by hand (its README), not held to these rules.
  globalIgnores(['dist/', 'docs/api/', 'coverage/', 'node_modules/', 'test-artifacts/', '**/.tmp/', 'test/attack/']),

  {
    files: ['**/*.{ts,mts,cts,js,mjs,cjs}'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      globals: globals.node,
      parserOptions: {
        // Every file is linted with the tsconfig that includes it (a file outside every tsconfig
        // is an error: include it). tsconfig.json takes the plain JavaScript of bench/, examples/
        // and test/ too (`allowJs`, not `checkJs`), so `import … from 'longpoll-kit'` resolves
        // through the exports map to dist/, as it does at run time, and all of it is one program:
        // a default project for the ~70 JavaScript files made `eslint .` take 31 s and 1.65 GB,
        // against 22 s and 1.38 GB.
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // An `async` method without `await` is how an implementation of a Promise-returning
      // contract (Engine.append, Engine.read…) turns a throw into a rejection.
      '@typescript-eslint/require-await': 'off',
    },
  },

  // Vitest's asymmetric matchers (`expect.any(String)`, `expect.objectContaining`) are typed `any`.
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/no-unsafe-assignment': 'off' } },

  // Plain JavaScript: the type-aware promise rules still apply, but inferred `any` is normal.
  {
    files: ['**/*.{js,mjs,cjs}'],
    rules: {
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },

  // Pages served by the examples run in the browser.
  { files: ['examples/**/public/**/*.js'], languageOptions: { globals: globals.browser } },

  // src/: everything that ships.
  restrictImports(['src/**/*.ts']),
  // The core knows nothing of HTTP, frameworks, the client or Redis; index.ts exports the core only.
  restrictImports(['src/*.ts'], {
    regex: '^\\./(http|adapters|client|redis|postgres)/',
    message: 'The core (src/*.ts) knows nothing of HTTP, adapters, the client or Redis (docs/architecture.md, "Parts").',
  }),
  // The protocol layer knows nothing of any framework.
  restrictImports(['src/http/**/*.ts'], {
    regex: '^(\\.\\./adapters/|express$|koa$|fastify$|node:https?$|node:http2$)',
    message: 'src/http/ is framework-neutral: no adapters, no framework imports (docs/architecture.md, "Seams").',
  }),
  restrictImports(['src/adapters/**/*.ts'], relativeExcept(['../index.js', '../http/protocol.js', '../http/connection.js'], adapterBoundary), typesOnly),
  // Express is Node http underneath, so its adapter wraps the Node one.
  restrictImports(
    ['src/adapters/express.ts'],
    relativeExcept(['../index.js', '../http/protocol.js', '../http/connection.js', './node.js'], adapterBoundary),
    typesOnly,
  ),
  // The client runs in browsers: only its own files, plus the dependency-free message and
  // error modules of the core.
  restrictImports(
    ['src/client/**/*.ts'],
    {
      regex: '^\\.\\./(?!engine\\.js$|errors\\.js$|limits\\.js$)',
      message: 'longpoll-kit/client may import from outside src/client only ../engine.js, ../errors.js and ../limits.js.',
    },
    { regex: '^node:', message: browserOnly },
    { group: nodeOnly, message: browserOnly },
  ),
  {
    // What the client may import from the core must stay browser-safe too.
    files: ['src/client/**/*.ts', 'src/engine.ts', 'src/errors.ts', 'src/limits.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        ...['Buffer', 'process', 'global', 'setImmediate', 'clearImmediate', 'require', 'module', '__dirname', '__filename'].map(
          (name) => ({ name, message: browserOnly }),
        ),
      ],
    },
  },
  restrictImports(
    ['src/engine.ts', 'src/errors.ts'],
    { regex: '^\\./', message: 'engine.ts and errors.ts are imported by the browser client: they import nothing.' },
    { regex: '^node:', message: browserOnly },
    { group: nodeOnly, message: browserOnly },
  ),
);
