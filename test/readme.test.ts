import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('README', () => {
  it('runs the quick start as written', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    const block = /<!-- The test suite runs this block[^>]*-->\n```ts\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(block, 'the quick start block').toBeDefined();
    const file = new URL('./.tmp/readme-quickstart.ts', import.meta.url);
    await mkdir(new URL('.', file), { recursive: true });
    await writeFile(file, block!);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    await import(/* @vite-ignore */ file.href);
    const lines = log.mock.calls.map((args) => args.map(String).join(' '));
    expect(lines.some((line) => line.endsWith(' hi'))).toBe(true);
    expect(lines.some((line) => line.endsWith(' again'))).toBe(true);
    expect(log).toHaveBeenLastCalledWith({ channels: 1, waiters: 0, messages: 2 });
  });
});
