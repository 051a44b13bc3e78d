/**
 * The client's `transport: 'sse'` in Debian's Chromium: the built longpoll-kit/client (dist/)
 * loaded as an ES module, reading a hand-written event stream through the browser's fetch.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHROMIUM = '/usr/bin/chromium';
const DIST = new URL('../dist/', import.meta.url);
// test/browser.test.ts fails under CI when Chromium is missing; this one only skips.
const hasChromium = existsSync(CHROMIUM);

const PAGE = `<!doctype html><meta charset="utf-8">
<script type="importmap">{ "imports": { "longpoll-kit/client": "/lib/client/index.js" } }</script>
<script type="module">
  import { subscribe } from 'longpoll-kit/client';
  window.seen = [];
  window.problems = [];
  const sub = subscribe('/channels/room', { transport: 'sse', headers: { authorization: 'Bearer t' }, backoff: { initial: 50, max: 500 } });
  sub.on('message', (m) => window.seen.push(m.data));
  sub.on('cursor', (c) => (window.cursor = c));
  sub.on('error', (e) => window.problems.push(e.message));
</script>`;

const event = (n: number) => `id: c${n}\nevent: message\ndata: ${JSON.stringify({ id: `m${n}`, channel: 'room', data: n, publishedAt: '2026-01-01T00:00:00.000Z' })}\n\n`;

describe.skipIf(!hasChromium)("transport: 'sse' in Chromium", () => {
  let server: Server;
  let browser: Browser;
  const streams: IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    if (!existsSync(new URL('client/index.js', DIST))) throw new Error('dist/client/index.js is missing: run `npm run build`');
    server = createServer((req, res) => {
      const path = new URL(req.url!, 'http://x').pathname;
      if (path === '/') return void res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
      if (path.startsWith('/lib/')) {
        readFile(new URL(path.slice('/lib/'.length), DIST)).then(
          (file) => res.writeHead(200, { 'content-type': 'text/javascript' }).end(file),
          () => res.writeHead(404).end(),
        );
        return;
      }
      if (path !== '/channels/room') return void res.writeHead(404).end();
      streams.push(req.headers);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      // The first stream ends after two messages, split mid-line across writes; the second resumes.
      if (streams.length === 1) {
        const text = `retry: 100\r\nid: c0\r\n\r\n${event(1)}${event(2)}`;
        res.write(text.slice(0, 30));
        setTimeout(() => res.end(text.slice(30)), 50);
      } else res.write(`: ping\n\n${event(3)}`);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 20_000, args: ['--no-sandbox', '--disable-gpu'] });
  });
  afterAll(async () => {
    await browser?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('streams through fetch with custom headers, and resumes with Last-Event-ID after the stream ends', async () => {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { timeout: 10_000 });
    await page.waitForFunction(() => (window as { seen?: number[] }).seen?.length === 3, undefined, { timeout: 5000 });
    const state = await page.evaluate(() => ({ seen: (window as { seen?: number[] }).seen, cursor: (window as { cursor?: string }).cursor, problems: (window as { problems?: string[] }).problems }));
    expect(state).toEqual({ seen: [1, 2, 3], cursor: 'c3', problems: [] });
    expect(streams[0]).toMatchObject({ accept: 'text/event-stream', authorization: 'Bearer t' });
    expect(streams[0]!['last-event-id']).toBeUndefined();
    expect(streams[1]!['last-event-id']).toBe('c2');
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 30_000);
});
