import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Hono } from 'hono';
import type { Broker } from 'longpoll-kit';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { fetchBridge } from './support/servers.js';

// The recipes of the README's fetch section, run as written (against the sources, like the
// other README tests; test/readme-types.test.ts compiles them against dist/).

/** The README block whose comment names this file and `name`, written to test/.tmp/ for import. */
async function recipe(name: 'Bun' | 'Hono', suffix = ''): Promise<string> {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const heading = name === 'Bun' ? '**Bun: the client key.**' : '**Hono.**';
  const block = new RegExp(`${heading.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[\\s\\S]*?-->\\n\`\`\`ts\\n([\\s\\S]*?)\\n\`\`\``).exec(readme)?.[1];
  expect(block, `the README's ${name} block`).toBeDefined();
  const file = new URL(`./.tmp/readme-${name.toLowerCase()}.ts`, import.meta.url);
  await mkdir(new URL('.', file), { recursive: true });
  await writeFile(file, `${block!}\n${suffix}`);
  return file.href;
}

describe('the README’s Hono recipe', () => {
  let app: Hono;
  let broker: Broker;
  const servers: Server[] = [];
  afterAll(async () => {
    servers.forEach((server) => server.close());
    await broker?.close();
  });

  it('answers polls and publishes through app.fetch, and leaves other routes to Hono', async () => {
    // The block's broker, exported for the test to publish with, as the application would.
    ({ default: app, broker } = (await import(/* @vite-ignore */ await recipe('Hono', 'export { broker };'))) as { default: Hono; broker: Broker });
    const first = await app.fetch(new Request('http://app.test/channels/room?wait=0'));
    expect(first.status).toBe(200);
    const { cursor } = (await first.json()) as { cursor: string };
    const held = app.fetch(new Request(`http://app.test/channels/room?wait=5&cursor=${cursor}`));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await broker.publish('room', { text: 'hi' });
    const answer = (await (await held).json()) as { messages: { data: unknown }[] };
    expect(answer.messages.map((m) => m.data)).toEqual([{ text: 'hi' }]);
    expect((await app.fetch(new Request('http://app.test/elsewhere'))).status).toBe(404);
  });

  it('serves a held poll over real HTTP through a node:http bridge', async () => {
    const server = createServer(fetchBridge(async (request) => app.fetch(request)));
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/channels/live`;
    const { cursor } = (await (await fetch(`${base}?wait=0`)).json()) as { cursor: string };
    const held = fetch(`${base}?wait=5&cursor=${cursor}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await broker.publish('live', 'over http');
    expect(((await (await held).json()) as { messages: { data: unknown }[] }).messages.map((m) => m.data)).toEqual(['over http']);
  });
});

/** An object shaped like Bun's server, for the part the recipe uses (Bun is not installed here). */
class FakeBunServer {
  readonly addresses = new WeakMap<Request, string>();
  fetch: ((this: FakeBunServer, request: Request, server: FakeBunServer) => Response | Promise<Response>) | undefined;
  requestIP(request: Request): { address: string; family: 'IPv4'; port: number } | null {
    const address = this.addresses.get(request);
    return address === undefined ? null : { address, family: 'IPv4', port: 40_000 };
  }
  /** A request from `address`, as Bun would hand it to `fetch` together with itself. */
  request(address: string, signal: AbortSignal): Promise<Response> {
    const request = new Request('http://app.test/channels/room?wait=10', { signal });
    this.addresses.set(request, address);
    return Promise.resolve(this.fetch!.call(this, request, this));
  }
}

describe('the README’s Bun client key recipe (with an object shaped like Bun’s server)', () => {
  const controller = new AbortController();
  afterEach(() => controller.abort());

  it('caps held polls per client address: the 7th from one address gets 429, another address is held', async () => {
    const server = new FakeBunServer();
    (globalThis as { Bun?: unknown }).Bun = {
      serve(options: { fetch: FakeBunServer['fetch'] }) {
        server.fetch = options.fetch;
        return server;
      },
    };
    try {
      await import(/* @vite-ignore */ await recipe('Bun'));
    } finally {
      delete (globalThis as { Bun?: unknown }).Bun;
    }
    let settled = 0;
    const held = Array.from({ length: 6 }, () => server.request('198.51.100.7', controller.signal).finally(() => settled++));
    const refused = await server.request('198.51.100.7', controller.signal);
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ code: 'limit_exceeded', limit: 'client' });
    const other = server.request('203.0.113.9', controller.signal);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBe(0); // the six are still held
    controller.abort();
    await Promise.allSettled([...held, other]);
  });
});
