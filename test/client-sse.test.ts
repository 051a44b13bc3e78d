/**
 * The client's `transport: 'sse'` and `channels` against hand-written node:http servers that
 * write event-stream bytes themselves, broken and hostile ones included, on 127.0.0.1.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { subscribe, type Message, type Subscription, type SubscribeOptions, type SubscriptionError } from 'longpoll-kit/client';
import { rejection } from './support/expect-error.js';
import { delay, until, useCleanups } from './support/cleanups.js';

const cleanups = useCleanups();

interface Seen {
  url: URL;
  headers: IncomingMessage['headers'];
  at: number;
  /** Whether the client is still connected. */
  open: boolean;
}

/** A node:http server whose `handle` gets the request's index (0 for the first). */
async function server(handle: (req: IncomingMessage, res: ServerResponse, index: number) => void) {
  const requests: Seen[] = [];
  const http = createServer((req, res) => {
    const seen: Seen = { url: new URL(req.url!, 'http://x'), headers: req.headers, at: Date.now(), open: true };
    requests.push(seen);
    res.once('close', () => (seen.open = false));
    handle(req, res, requests.length - 1);
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  cleanups.push(async () => {
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
  });
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/channels/room`, requests };
}

function stream(res: ServerResponse, text = ''): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
  res.write(text);
}

const message = (id: string, data: unknown, cursor: string) =>
  `id: ${cursor}\nevent: message\ndata: ${JSON.stringify({ id, channel: 'room', data, publishedAt: '2026-01-01T00:00:00.000Z' })}\n\n`;

function sse<T = unknown>(url: string, options: SubscribeOptions = {}): Subscription<T> {
  const sub = subscribe<T>(url, { transport: 'sse', backoff: { initial: 50, max: 2000 }, ...options });
  cleanups.push(() => sub.close());
  return sub;
}

function collect<T>(sub: Subscription<T>) {
  const seen = { messages: [] as Message<T>[], errors: [] as SubscriptionError[], resets: [] as (string | undefined)[], cursors: [] as string[], opened: 0 };
  sub.on('message', (m) => seen.messages.push(m));
  sub.on('error', (e) => seen.errors.push(e));
  sub.on('reset', (e) => seen.resets.push(e.earliestCursor));
  sub.on('cursor', (c) => seen.cursors.push(c));
  sub.on('open', () => seen.opened++);
  return seen;
}

describe("transport: 'sse'", () => {
  it('reads events, keeps the last id as its cursor, and resumes with Last-Event-ID after the retry: delay', async () => {
    const { url, requests } = await server((_req, res, index) => {
      if (index === 0) {
        stream(res, 'retry: 300\nid: c0\n\n: ping\n\n' + message('m1', 'a', 'c1') + message('m2', 'b', 'c2'));
        res.end();
      } else {
        // m2 again (a repeat after a reconnect) is dropped; m3 is new.
        stream(res, 'retry: 300\nid: c2\n\n' + message('m2', 'b', 'c2') + message('m3', 'c', 'c3'));
      }
    });
    const sub = sse<string>(url, { headers: () => ({ authorization: 'Bearer t' }) });
    const seen = collect(sub);
    await until(() => seen.messages.length === 3);
    expect(seen.messages.map((m) => m.data)).toEqual(['a', 'b', 'c']);
    expect(sub.cursor).toBe('c3');
    expect(seen.cursors).toEqual(['c0', 'c1', 'c2', 'c3']);
    expect(seen.opened).toBe(1); // a normal end is not a recovery from errors
    expect(seen.errors).toEqual([]);
    expect(requests[0]!.headers).toMatchObject({ accept: 'text/event-stream', authorization: 'Bearer t' });
    expect(requests[0]!.headers['last-event-id']).toBeUndefined();
    expect(requests[1]!.headers['last-event-id']).toBe('c2');
    expect(requests[1]!.url.search).toBe(''); // the position travels in the header only
    expect(requests[1]!.at - requests[0]!.at).toBeGreaterThanOrEqual(280);
  });

  it('starts from the cursor option with Last-Event-ID, and follows an event: reset', async () => {
    const { url, requests } = await server((_req, res) => {
      stream(res, 'retry: 2000\n' + 'event: reset\nid: e5\ndata: {"earliestCursor":"e5"}\n\n' + message('m6', 6, 'c6'));
    });
    const sub = sse<number>(url, { cursor: 'old' });
    const seen = collect(sub);
    await until(() => seen.messages.length === 1);
    expect(requests[0]!.headers['last-event-id']).toBe('old');
    expect(seen.resets).toEqual(['e5']);
    expect(seen.cursors).toEqual(['e5', 'c6']);
    expect(sub.cursor).toBe('c6');
  });

  it('honours Retry-After on 429, then streams', async () => {
    const { url, requests } = await server((_req, res, index) => {
      if (index === 0) {
        res.writeHead(429, { 'content-type': 'application/problem+json', 'retry-after': '1' });
        res.end(JSON.stringify({ type: 'about:blank', status: 429, code: 'limit_exceeded' }));
      } else stream(res, 'id: c1\n\n' + message('m1', 1, 'c1'));
    });
    const sub = sse(url);
    const seen = collect(sub);
    await until(() => seen.messages.length === 1, 4000);
    expect(seen.errors).toHaveLength(1);
    expect(seen.errors[0]).toMatchObject({ status: 429, code: 'limit_exceeded', fatal: false });
    expect(seen.errors[0]!.retryIn).toBeGreaterThanOrEqual(1000);
    expect(requests[1]!.at - requests[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it.each([400, 401, 403, 404])('gives up on %i', async (status) => {
    const { url, requests } = await server((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ status, code: 'nope' }));
    });
    const sub = sse(url);
    const seen = collect(sub);
    await until(() => sub.closed);
    await delay(200);
    expect(requests).toHaveLength(1);
    expect(seen.errors).toHaveLength(1);
    expect(seen.errors[0]).toMatchObject({ status, fatal: true });
  });

  it('cuts an endless line at maxBodyBytes, and reconnects from the last complete event', async () => {
    let written = 0;
    const { url, requests } = await server((_req, res, index) => {
      if (index > 0) return stream(res, ': quiet\n\n');
      stream(res, 'id: c1\n\n' + message('m1', 1, 'c1') + 'data: ');
      const chunk = 'x'.repeat(16 * 1024);
      const pump = () => {
        while (!res.destroyed && written < 64 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    });
    const sub = sse(url, { maxBodyBytes: 64 * 1024 });
    const seen = collect(sub);
    await until(() => requests.length === 2, 5000, 'a reconnect');
    expect(seen.errors[0]).toMatchObject({ code: 'event_too_large', fatal: false });
    expect(seen.messages.map((m) => m.id)).toEqual(['m1']);
    expect(requests[0]!.open).toBe(false); // the client cancelled the endless body
    expect(written).toBeLessThan(64 * 1024 * 1024);
    expect(requests[1]!.headers['last-event-id']).toBe('c1');
  });

  it('aborts a stream that brings no byte for idleTimeout, and one whose headers never come', async () => {
    const { url, requests } = await server((_req, res, index) => {
      if (index === 0) res.writeHead(200, { 'content-type': 'text/event-stream' }).flushHeaders(); // then silence
      else if (index === 1) return; // no answer at all
      else stream(res, message('m1', 1, 'c1'));
    });
    const sub = sse(url, { idleTimeout: 300 });
    const seen = collect(sub);
    await until(() => seen.messages.length === 1, 5000);
    expect(seen.errors.map((e) => e.code)).toEqual(['idle_timeout', undefined]);
    expect(seen.errors[1]!.message).toMatch(/No answer within 300 ms/);
    expect(requests[0]!.open).toBe(false);
    expect(requests[1]!.open).toBe(false);
  });

  it('keeps a stream of pings alive past idleTimeout', async () => {
    const { url, requests } = await server((_req, res) => {
      stream(res, 'id: c0\n\n');
      const timer = setInterval(() => res.write(': ping\n\n'), 100);
      res.once('close', () => clearInterval(timer));
    });
    const sub = sse(url, { idleTimeout: 300 });
    const seen = collect(sub);
    await delay(1000);
    expect(seen.errors).toEqual([]);
    expect(requests).toHaveLength(1);
    sub.close();
    await until(() => !requests[0]!.open, 1000, 'the stream closed by close()');
  });

  it('drops an event the server cut off, whether it ended the body or broke the connection', async () => {
    const half = message('m2', 2, 'c2').slice(0, 40);
    const { url, requests } = await server((_req, res, index) => {
      if (index === 0) {
        stream(res, message('m1', 1, 'c1') + half);
        res.end(); // a normal end mid-event
      } else if (index === 1) {
        stream(res, half);
        setTimeout(() => res.socket!.destroy(), 20); // a broken connection mid-event
      } else stream(res, message('m2', 2, 'c2'));
    });
    const sub = sse(url, { backoff: { initial: 10, max: 100 } });
    const seen = collect(sub);
    await until(() => seen.messages.length === 2, 5000);
    expect(seen.messages.map((m) => m.id)).toEqual(['m1', 'm2']);
    expect(requests.slice(1).map((r) => r.headers['last-event-id'])).toEqual(['c1', 'c1']);
    expect(seen.errors).toHaveLength(1); // the broken connection; the normal end is none
  });

  it('does not reconnect in a tight loop to a server that ends every stream at once with retry: 0', async () => {
    const { url, requests } = await server((_req, res) => {
      stream(res, 'retry: 0\n\n');
      res.end();
    });
    const sub = sse(url, { backoff: { initial: 100, max: 400 } });
    await delay(1500);
    sub.close();
    expect(requests.length).toBeGreaterThan(2);
    expect(requests.length).toBeLessThan(16);
  });

  it('reports a 200 that is not an event stream, and backs off', async () => {
    const { url, requests } = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"messages":[],"cursor":"c","timedOut":true}');
    });
    const sub = sse(url, { backoff: { initial: 100, max: 400 } });
    const seen = collect(sub);
    await delay(1000);
    sub.close();
    expect(seen.errors[0]).toMatchObject({ code: 'not_event_stream', fatal: false });
    expect(requests.length).toBeLessThan(12);
  });

  it('stops reading while the iterator is full, so the server stops writing, and loses nothing', async () => {
    let written = 0;
    let blocked = false;
    const total = 4000;
    const { url } = await server((_req, res) => {
      stream(res, 'id: c0\n\n');
      const pad = 'p'.repeat(4000);
      const pump = () => {
        while (written < total) {
          written++;
          if (!res.write(message(`m${written}`, { n: written, pad }, `c${written}`))) {
            blocked = true;
            return void res.once('drain', () => {
              blocked = false;
              pump();
            });
          }
        }
      };
      pump();
    });
    // idleTimeout below the pause: a reader that stopped on purpose is no silent server.
    const sub = sse<{ n: number }>(url, { bufferSize: 5, idleTimeout: 200 });
    const errors: SubscriptionError[] = [];
    sub.on('error', (e) => errors.push(e));
    await until(() => blocked, 5000, 'the server blocked on a full socket');
    const before = written;
    await delay(500);
    expect(written).toBe(before); // nothing read: the server stays blocked
    expect(errors).toEqual([]);
    expect(written).toBeLessThan(total);
    const read: number[] = [];
    for await (const m of sub) {
      read.push(m.data.n);
      if (read.length === total) break;
    }
    expect(read).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  });

  it('stops at once on close(): the stream is aborted', async () => {
    const { url, requests } = await server((_req, res) => stream(res, 'id: c0\n\n'));
    const sub = sse(url);
    const seen = collect(sub);
    await until(() => seen.opened === 1);
    sub.close();
    await until(() => !requests[0]!.open, 1000, 'the server saw the stream end');
    await delay(200);
    expect(requests).toHaveLength(1);
  });
});

describe('the channels option', () => {
  it('lists the channels on the prefix URL, names percent-encoded and commas kept, for polls and streams', async () => {
    const { url, requests } = await server((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/problem+json' });
      res.end('{}');
    });
    const prefix = url.replace('/room', '');
    for (const transport of ['poll', 'sse'] as const) {
      const sub = subscribe(`${prefix}?token=a%2Bb`, { transport, channels: ['room:1', 'presence:1', 'a b'] });
      cleanups.push(() => sub.close());
      await until(() => sub.closed);
    }
    const [poll, stream] = requests.map((r) => r.url);
    expect(poll!.pathname).toBe('/channels');
    expect(poll!.search).toMatch(/^\?token=a%2Bb&channels=room%3A1,presence%3A1,a%20b&wait=0&limit=100$/);
    expect(stream!.search).toBe('?token=a%2Bb&channels=room%3A1,presence%3A1,a%20b');
  });

  it('refuses lists the server would refuse, and a URL that lists channels itself', async () => {
    const prefix = 'http://127.0.0.1:9/channels';
    for (const channels of [[], [''], ['a', 'a'], ['a,b'], 'a', [1]]) {
      await rejection(() => subscribe(prefix, { channels: channels as string[] }), 'invalid_option');
    }
    const error = await rejection(() => subscribe(`${prefix}?channels=a`, { channels: ['b'] }), 'invalid_option');
    expect(error.message).toMatch(/prefix URL/);
    await rejection(() => subscribe(prefix, { transport: 'ws' as 'sse' }), 'invalid_option');
    await rejection(() => subscribe(prefix, { idleTimeout: 0 }), 'invalid_option');
  });
  it('backs off from a stream that sends reset after reset, as a poll does after two 410s in a row', async () => {
    // A hostile or broken server: nothing but `event: reset`, thousands a second, on one stream.
    const flood = 'event: reset\nid: e1\ndata: {"earliestCursor":"e1"}\n\n'.repeat(200);
    const { url, requests } = await server((_req, res) => {
      stream(res, flood);
      const timer = setInterval(() => res.write(flood), 5);
      res.on('close', () => clearInterval(timer));
    });
    const seen = collect(sse(url));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // The app reloads its state on each reset: a handful, not tens of thousands, and it is told.
    expect(seen.resets.length).toBeLessThanOrEqual(10);
    expect(seen.errors.some((error) => error.code === 'no_progress')).toBe(true);
    expect(requests.length).toBeLessThanOrEqual(10);
  });
});
