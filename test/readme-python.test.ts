import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter, MemoryEngine } from '../src/index.js';
import { longPoll, type NodeLongPollOptions } from '../src/adapters/node.js';
import { stopProcess } from './support/child-process.js';

// The README's Python client (the HTTP protocol section), run unchanged with python3 against a
// server started here. The servers grant a wait of a few hundred milliseconds whatever the loop
// asks (`maxWait`), so it makes many requests within a few seconds.

/**
 * Whether python3 with requests is here. Locally its absence skips these tests loudly; under
 * CI=true it is a failure, so a CI run never passes by skipping.
 */
function pythonAvailable(): boolean {
  const found = spawnSync('python3', ['-c', 'import requests'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
  if (found) return true;
  if (process.env.CI === 'true') throw new Error('python3 with requests is required under CI=true (.ci/run installs python3-requests)');
  console.warn('\n!!! python3 or its requests module not found: SKIPPING test/readme-python.test.ts. Install python3-requests to run it. !!!\n');
  return false;
}

/** The README's Python block, written to test/.tmp/ as it is. */
async function pythonClient(): Promise<string> {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const block = /<!-- test\/readme-python\.test\.ts runs this block[^>]*-->\n```python\n([\s\S]*?)\n```/.exec(readme)?.[1];
  expect(block, 'the README’s Python block').toBeDefined();
  const file = new URL('./.tmp/readme-client.py', import.meta.url);
  await mkdir(new URL('.', file), { recursive: true });
  await writeFile(file, `${block!}\n`);
  return fileURLToPath(file);
}

/** One request as the server saw it: when it came, its cursor, and how it was answered. */
interface Seen {
  readonly at: number;
  readonly cursor: string | null;
  status?: number;
  retryAfter?: number;
}

/** A node:http server with the adapter under /channels, recording every request. */
async function serve(broker: Broker, options: NodeLongPollOptions): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const handler = longPoll(broker, { prefix: '/channels', maxWait: 300, ...options });
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const request: Seen = { at: Date.now(), cursor: new URL(req.url!, 'http://x').searchParams.get('cursor') };
    seen.push(request);
    // The adapter hands its headers to writeHead (so getHeader never sees them): read them there.
    const writeHead = res.writeHead.bind(res) as (status: number, headers: Record<string, string>) => typeof res;
    res.writeHead = ((status: number, headers: Record<string, string>) => {
      request.status = status;
      if (headers['retry-after'] !== undefined) request.retryAfter = Number(headers['retry-after']);
      return writeHead(status, headers);
    }) as typeof res.writeHead;
    handler(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/channels/demo`, seen, server };
}

/** The README's loop, running with LONGPOLL_URL=url; `lines` is what it printed so far. */
async function startLoop(url: string) {
  const child = spawn('python3', [await pythonClient()], { env: { ...process.env, LONGPOLL_URL: url }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let errors = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (errors += chunk));
  return {
    child,
    lines: () => output.split('\n').filter((line) => line !== ''),
    errors: () => errors,
  };
}

/** Resolves once `done()` holds, checking every 20 ms; fails after `ms`. */
async function until(done: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.runIf(pythonAvailable())('the README’s Python client', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setUp(engine: MemoryEngine, options: NodeLongPollOptions = {}) {
    const broker = new Broker({ engine });
    const served = await serve(broker, options);
    cleanups.push(async () => {
      served.server.closeAllConnections();
      served.server.close();
      await broker.close();
    });
    return { broker, ...served };
  }

  async function run(url: string) {
    const loop = await startLoop(url);
    cleanups.push(() => stopProcess(loop.child, 'SIGTERM'));
    return loop;
  }

  it('receives a retained message and a later one exactly once over many polls, keeping the cursor', async () => {
    const { broker, url, seen } = await setUp(new MemoryEngine());
    await broker.publish('demo', 'retained');
    const loop = await run(url);
    await until(() => seen.length >= 4, 10_000, `four requests (stderr: ${loop.errors()})`);
    await broker.publish('demo', 'live');
    await until(() => seen.length >= 8, 10_000, `eight requests (stderr: ${loop.errors()})`);

    expect(loop.lines()).toEqual(['demo retained', 'demo live']);
    // Only the first request came without a cursor; every answer was a 200.
    expect(seen[0]!.cursor).toBeNull();
    expect(seen.slice(1).every((request) => request.cursor !== null)).toBe(true);
    expect(seen.filter((request) => request.status !== undefined && request.status !== 200)).toEqual([]);
  });

  it('goes on from earliestCursor after a 410, with what the server still has', async () => {
    const { broker, url, seen } = await setUp(new MemoryEngine({ capacity: 2 }));
    const loop = await run(url);
    await until(() => seen.length >= 2, 10_000, `two requests (stderr: ${loop.errors()})`);
    // Five at once: the loop's cursor falls behind the two the channel keeps.
    await Promise.all(['m1', 'm2', 'm3', 'm4', 'm5'].map((text) => broker.publish('demo', text)));
    await until(() => loop.lines().includes('demo m5'), 10_000, `m5 printed (stderr: ${loop.errors()})`);
    const after = seen.length;
    await until(() => seen.length >= after + 3, 10_000, 'three more requests');

    expect(seen.some((request) => request.status === 410)).toBe(true);
    const lines = loop.lines();
    expect(lines.slice(-2)).toEqual(['demo m4', 'demo m5']);
    expect(lines).not.toContain('demo m2');
    expect(lines).not.toContain('demo m3');
    expect(new Set(lines).size).toBe(lines.length);
  });

  it('waits as Retry-After says when the server answers 429', async () => {
    // Two requests at once, then one every 3 s: Retry-After 3, longer than the loop's own first
    // backoff (up to 2 s), so a loop that ignored it would come back too soon.
    const limiter = new ConnectionLimiter({ rate: { requests: 2, per: 6000 } });
    const { broker, url, seen } = await setUp(new MemoryEngine(), { limiter });
    await broker.publish('demo', 'retained');
    const loop = await run(url);
    await until(() => seen.filter((request) => request.status === 429).length >= 2 && seen.length >= 6, 15_000, `two 429s and six requests (stderr: ${loop.errors()})`);

    expect(loop.lines()).toEqual(['demo retained']);
    for (const [i, request] of seen.entries()) {
      const next = seen[i + 1];
      if (request.status !== 429 || next === undefined) continue;
      expect(request.retryAfter).toBe(3);
      expect(next.at - request.at).toBeGreaterThanOrEqual(request.retryAfter! * 1000 - 50);
    }
  });
});
