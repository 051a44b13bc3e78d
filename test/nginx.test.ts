import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter } from '../src/index.js';
import { longPoll } from '../src/adapters/node.js';
import { eventually, stillPending } from './examples/held-poll.js';
import { findNginx, readmeSite, startNginx, type RunningNginx } from './support/nginx.js';

const nginxBinary = findNginx();
if (!nginxBinary) {
  const message = 'nginx is not installed (neither on PATH nor /usr/sbin/nginx): the nginx tests cannot run.';
  if (process.env.CI === 'true') throw new Error(`${message} CI must install it (apt-get install nginx).`);
  console.warn(`\n!!! SKIPPING test/nginx.test.ts: ${message} Install it with: apt-get install nginx\n`);
}

/** The longest wait the server grants, in ms (the adapters' default `maxWait`). */
const MAX_WAIT = 55_000;

/** Seconds of a directive such as `proxy_read_timeout 65s;` (nginx's units s and m). */
function seconds(snippet: string, directive: string): number {
  const match = new RegExp(`^\\s*${directive}\\s+(\\d+)(s|m)?;`, 'm').exec(snippet);
  if (!match) return Number.NaN;
  return Number(match[1]) * (match[2] === 'm' ? 60 : 1);
}

describe.skipIf(!nginxBinary)('behind nginx, configured with the README snippet', () => {
  const broker = new Broker({ capacity: 2 });
  const limiter = new ConnectionLimiter({ perChannel: 1 });
  const clientKeys: (string | undefined)[] = [];
  let upstreamConnections = 0;
  let app: Server;
  let upstream: string;
  let nginx: RunningNginx;
  let snippet: string;

  beforeAll(async () => {
    app = createServer(
      longPoll(broker, {
        prefix: '/channels',
        limiter,
        publish: true,
        timeoutStatus: 204,
        // As the README advises behind nginx: the client is who nginx says it is.
        clientKey: (req: IncomingMessage) => {
          const key = req.headers['x-real-ip']?.toString();
          clientKeys.push(key);
          return key;
        },
      }),
    );
    app.on('connection', () => upstreamConnections++);
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    const { port } = app.address() as AddressInfo;
    upstream = `http://127.0.0.1:${port}`;
    const site = await readmeSite(port);
    snippet = site.snippet;
    nginx = await startNginx(nginxBinary!, site);
  });

  afterAll(async () => {
    await nginx?.stop();
    await broker.close();
    app?.closeAllConnections();
    if (app?.listening) await new Promise((resolve) => app.close(resolve));
  });

  const through = (path: string) => `${nginx.origin}/channels/${path}`;
  const direct = (path: string) => `${upstream}/channels/${path}`;
  const publish = (url: string, data: unknown) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(data),
      signal: AbortSignal.timeout(5000),
    });

  it('documents a proxy_read_timeout above the longest wait, and buffering off', () => {
    expect(seconds(snippet, 'proxy_read_timeout') * 1000).toBeGreaterThan(MAX_WAIT);
    expect(snippet).toMatch(/^\s*proxy_buffering off;/m);
    expect(snippet).toMatch(/^\s*proxy_http_version 1\.1;/m);
    expect(snippet).toMatch(/^\s*proxy_set_header Connection "";/m);
  });

  it('answers a poll held 5 s through nginx with the message published then', async () => {
    const first = await fetch(`${through('slow')}?wait=0`, { signal: AbortSignal.timeout(5000) });
    const cursor = first.headers.get('longpoll-cursor');
    expect(cursor).toBeTruthy();

    const started = Date.now();
    const held = fetch(`${through('slow')}?cursor=${cursor}&wait=30`, { signal: AbortSignal.timeout(15_000) });
    expect(await stillPending(held, 5000)).toBe('pending');
    const published = await publish(through('slow'), { text: 'after five seconds' });
    expect(published.status).toBe(201);

    const answer = await held;
    expect(Date.now() - started).toBeGreaterThanOrEqual(5000);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    const body = (await answer.json()) as { messages: { data: unknown }[]; timedOut: boolean };
    expect(body).toMatchObject({ timedOut: false, messages: [{ data: { text: 'after five seconds' } }] });
    expect(clientKeys).toContain('127.0.0.1');
  });

  it('passes a 204 timeout through with its cursor header and no body', async () => {
    const answer = await fetch(`${through('quiet')}?wait=0.2`, { signal: AbortSignal.timeout(5000) });
    expect(answer.status).toBe(204);
    expect(answer.headers.get('longpoll-cursor')).toBeTruthy();
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(await answer.text()).toBe('');
  });

  it('passes a 410 cursor_expired problem through unchanged', async () => {
    const { cursor } = await broker.read('short');
    for (const text of ['one', 'two', 'three']) await broker.publish('short', { text });
    const path = `short?cursor=${cursor}&wait=0`;
    const get = (url: string) => fetch(url, { signal: AbortSignal.timeout(5000) });
    const [viaNginx, fromNode] = await Promise.all([get(through(path)), get(direct(path))]);
    expect(viaNginx.status).toBe(410);
    expect(viaNginx.headers.get('content-type')).toBe(fromNode.headers.get('content-type'));
    const problem: unknown = await viaNginx.json();
    expect(problem).toEqual(await fromNode.json());
    expect(problem).toMatchObject({ code: 'cursor_expired', earliestCursor: expect.any(String) });
  });

  it('passes a 429 with its Retry-After through unchanged', async () => {
    const first = new AbortController();
    const held = fetch(`${through('crowded')}?wait=20`, { signal: first.signal }).catch(() => undefined);
    try {
      expect(await eventually(() => limiter.stats().total === 1)).toBe(true);
      const refused = await fetch(`${through('crowded')}?wait=20`, { signal: AbortSignal.timeout(5000) });
      expect(refused.status).toBe(429);
      expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(await refused.json()).toMatchObject({ code: 'limit_exceeded', limit: 'channel' });
    } finally {
      first.abort();
      await held;
    }
  });

  it('frees the waiter and the lease when a client behind nginx goes away', async () => {
    const client = new AbortController();
    const held = fetch(`${through('leaving')}?wait=20`, { signal: client.signal }).catch(() => undefined);
    expect(await eventually(() => broker.stats().waiters === 1 && limiter.stats().total === 1)).toBe(true);
    client.abort();
    await held;
    expect(await eventually(() => broker.stats().waiters === 0 && limiter.stats().total === 0, 2000)).toBe(true);
  });

  it('reuses its connections to Node (keep-alive upstream)', async () => {
    const before = upstreamConnections;
    for (let n = 0; n < 5; n++) {
      const answer = await fetch(`${through('reuse')}?wait=0`, { signal: AbortSignal.timeout(5000) });
      expect(answer.status).toBe(204);
    }
    expect(upstreamConnections - before).toBeLessThanOrEqual(1);
  });
});
