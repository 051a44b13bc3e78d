import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

/** Files that assert latency bounds an issue demands: they run last, one at a time, alone. */
const timing = ['test/redis/cluster.test.ts'];

const source = (name: string) => fileURLToPath(new URL(`./src/${name}.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests and README snippets import the package by name; run them against the sources.
    alias: [
      { find: /^longpoll-kit$/, replacement: source('index') },
      ...['node', 'express', 'koa', 'fastify', 'fetch'].map((name) => ({ find: `longpoll-kit/${name}`, replacement: source(`adapters/${name}`) })),
      { find: 'longpoll-kit/client', replacement: source('client/index') },
      { find: 'longpoll-kit/redis', replacement: source('redis/index') },
      { find: 'longpoll-kit/postgres', replacement: source('postgres/index') },
    ],
  },
  test: {
    // Builds dist/ when it is missing or stale: many tests run the package as built.
    globalSetup: ['test/support/built.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    projects: [
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...timing], sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'timing', include: timing, fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
});
