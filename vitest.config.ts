import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const source = (name: string) => fileURLToPath(new URL(`./src/${name}.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests and README snippets import the package by name; run them against the sources.
    alias: [
      { find: /^longpoll-kit$/, replacement: source('index') },
      ...['node', 'express', 'koa', 'fetch'].map((name) => ({ find: `longpoll-kit/${name}`, replacement: source(`adapters/${name}`) })),
      { find: 'longpoll-kit/client', replacement: source('client/index') },
      { find: 'longpoll-kit/redis', replacement: source('redis/index') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
