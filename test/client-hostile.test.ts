import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { subscribe, type Subscription, type SubscriptionError } from 'longpoll-kit/client';
import { Broker } from '../src/index.js';
import { startServer } from './support/servers.js';

// The client against servers that are broken or hostile, each a real node:http server on
// 127.0.0.1: an endless body, more messages than asked for, the same message and cursor again
// and again, empty answers at once. Each test runs for a bounded time and measures what a
// user would feel: requests per second, memory, what was delivered.

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `check` holds, looking every 5 ms; fails after `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${ms} ms`);
    await delay(5);
  }
}

interface Hostile {
  readonly url: string;
  /** Every request's query, in arrival order. */
  readonly requests: URLSearchParams[];
}

/** A bare node:http server on 127.0.0.1 answering every request with `handle`, closed after the test. */
async function hostileServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<Hostile> {
  const requests: URLSearchParams[] = [];
  const server = createServer((req, res) => {
    requests.push(new URL(req.url ?? '/', 'http://x').searchParams);
    handle(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/channels/room`, requests };
}

function track<T>(sub: Subscription<T>) {
  cleanups.push(() => sub.close());
  const seen = { messages: [] as T[], errors: [] as SubscriptionError[] };
  sub.on('message', (m) => seen.messages.push(m.data));
  sub.on('error', (e) => seen.errors.push(e));
  return seen;
}

const json = (res: ServerResponse, body: string) => res.writeHead(200, { 'content-type': 'application/json' }).end(body);

/** Samples heap plus array buffers every 10 ms; `peak()` is the most it grew above where it started. */
function memoryPeak() {
  const used = () => {
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    return heapUsed + arrayBuffers;
  };
  const start = used();
  let peak = start;
  const timer = setInterval(() => (peak = Math.max(peak, used())), 10);
  cleanups.push(() => clearInterval(timer));
  return { peak: () => Math.max(peak, used()) - start };
}

const MiB = 1024 * 1024;

describe('the client against an endless answer', () => {
  it('never buffers more than maxBodyBytes: it asks again with half the limit down to 1, then reports answer_too_large and backs off', async () => {
    // Each answer is a 200 whose body never ends (up to 512 MiB, sent as fast as the socket takes it).
    const chunk = Buffer.from('{"id":"x","data":0},'.repeat(3300));
    const endless = await hostileServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"cursor":"c1","messages":[');
      let sent = 0;
      const pump = () => {
        while (!res.destroyed && sent < 512 * MiB) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    });
    const memory = memoryPeak();
    const seen = track(subscribe(endless.url, { maxBodyBytes: MiB, backoff: { initial: 1000, max: 1000 } }));
    await until(() => seen.errors.length === 1, 5000, 'the error');
    const grown = memory.peak();
    console.log(`endless answer: heap + array buffers grew by at most ${(grown / MiB).toFixed(1)} MiB`);
    expect(endless.requests.map((query) => query.get('limit'))).toEqual(['100', '50', '25', '12', '6', '3', '1']);
    expect(seen.errors[0]).toMatchObject({ code: 'answer_too_large', fatal: false, retryIn: expect.any(Number) });
    expect(seen.errors[0]!.message).toContain('1048576');
    expect(grown).toBeLessThan(64 * MiB);
    // Then it backs off as after any failure (at most backoff.max here), and keeps asking for one message.
    await until(() => seen.errors.length === 2, 2000, 'the retry after backoff');
    expect(endless.requests.map((query) => query.get('limit')).slice(7)).toEqual(['1']);
    expect(seen.errors[1]).toMatchObject({ code: 'answer_too_large' });
    expect(memory.peak()).toBeLessThan(64 * MiB);
    expect(seen.messages).toEqual([]);
  });

  it('reads a backlog too large for one answer in smaller answers, skipping nothing', async () => {
    const broker = new Broker<string>();
    const server = await startServer('node', broker);
    const seenLimits: string[] = [];
    server.server.on('request', (req: IncomingMessage) => seenLimits.push(new URL(req.url!, server.origin).searchParams.get('limit')!));
    cleanups.push(async () => {
      await server.close();
      await broker.close();
    });
    const text = 'x'.repeat(20_000);
    for (let i = 0; i < 40; i++) await broker.publish('room', `${i}${text}`);
    const sub = subscribe<string>(server.url('room'), { maxBodyBytes: 256 * 1024, wait: 1000 });
    const seen = track(sub);
    await until(() => seen.messages.length === 40, 5000, 'the whole backlog');
    expect(seen.messages.map((data) => Number.parseInt(data, 10))).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(seen.errors).toEqual([]);
    // 100 and 50 and 25 messages of 20 KB do not fit in 256 KiB; 12 do.
    expect(seenLimits.slice(0, 4)).toEqual(['100', '50', '25', '12']);
  });
});

describe('the client against an answer longer than it asked for', () => {
  it('delivers none of 200,000 messages sent for a limit of 100: an error, its cursor kept, and backoff', async () => {
    const messages = Array.from({ length: 200_000 }, (_, i) => ({ id: `m${i}`, data: i }));
    const body = JSON.stringify({ messages, cursor: 'c200000', timedOut: false });
    const flood = await hostileServer((_req, res) => json(res, body));
    const sub = subscribe(flood.url, { cursor: 'c0', backoff: { initial: 500, max: 5000 } });
    const seen = track(sub);
    await delay(1500);
    expect(seen.messages).toHaveLength(0);
    expect(sub.cursor).toBe('c0');
    expect(seen.errors[0]).toMatchObject({ code: 'too_many_messages', fatal: false, message: expect.stringContaining('200000') });
    expect(flood.requests.every((query) => query.get('cursor') === 'c0' && query.get('limit') === '100')).toBe(true);
    // Backoff with full jitter: at most a handful of requests in 1.5 s.
    expect(flood.requests.length).toBeLessThan(8);
  });
});

describe('the client against a server that makes no progress', () => {
  it('backs off from a server that repeats the same message and cursor, and reports no_progress', async () => {
    const body = JSON.stringify({ messages: [{ id: 'm1', data: 1 }], cursor: 'c1', timedOut: false });
    const repeating = await hostileServer((_req, res) => json(res, body));
    const sub = subscribe(repeating.url, { backoff: { initial: 200, max: 1000 } });
    const seen = track(sub);
    await delay(2000);
    const perSecond = repeating.requests.length / 2;
    console.log(`a server repeating one message and cursor: ${perSecond} requests/s`);
    expect(perSecond).toBeLessThan(10);
    expect(seen.messages).toEqual([1]);
    expect(sub.cursor).toBe('c1');
    expect(seen.errors.length).toBeGreaterThanOrEqual(1);
    expect(seen.errors.every((error) => error.code === 'no_progress' && !error.fatal)).toBe(true);
  });

  it('re-polls at once after a held timeout that keeps the same cursor', async () => {
    const timedOut = JSON.stringify({ messages: [], cursor: 'c1', timedOut: true });
    const holding = await hostileServer((req, res) => {
      const wait = Number(new URL(req.url!, 'http://x').searchParams.get('wait'));
      setTimeout(() => json(res, timedOut), wait * 1000);
    });
    const sub = subscribe(holding.url, { wait: 200, backoff: { initial: 5000, max: 5000 } });
    const seen = track(sub);
    await until(() => holding.requests.length >= 5, 2000, 'five polls, each held 200 ms');
    expect(seen.errors).toEqual([]);
    expect(holding.requests.slice(1).every((query) => query.get('cursor') === 'c1' && query.get('wait') === '0.2')).toBe(true);
  });
});

describe('the client with wait: 0 (short polling)', () => {
  it('polls an empty channel of a real server once per backoff.initial, and still gets new messages', async () => {
    const broker = new Broker<number>();
    const server = await startServer('node', broker);
    let requests = 0;
    server.server.on('request', () => requests++);
    cleanups.push(async () => {
      await server.close();
      await broker.close();
    });
    const sub = subscribe<number>(server.url('room'), { wait: 0, backoff: { initial: 200, max: 5000 } });
    const seen = track(sub);
    await delay(1500);
    console.log(`wait: 0 against an empty channel: ${requests} requests in 1.5 s`);
    // One at once, then one every 200 ms plus the request's own time.
    expect(requests).toBeGreaterThanOrEqual(4);
    expect(requests).toBeLessThanOrEqual(8);
    await broker.publish('room', 1);
    await until(() => seen.messages.length === 1, 1000, 'the message, within a short-poll interval');
    expect(seen.errors).toEqual([]);
  });

  it('does not poll a server holding each poll for a few milliseconds more than 20 times a second', async () => {
    const broker = new Broker<number>();
    const server = await startServer('node', broker);
    let requests = 0;
    server.server.on('request', () => requests++);
    cleanups.push(async () => {
      await server.close();
      await broker.close();
    });
    track(subscribe<number>(server.url('room'), { wait: 5, backoff: { initial: 200, max: 200 } }));
    await delay(1500);
    console.log(`wait: 5 against an empty channel: ${requests} requests in 1.5 s`);
    // Empty answers under 50 ms back off; slower ones come at most 1500 / 50 = 30 times, plus the first.
    expect(requests).toBeLessThanOrEqual(31);
  });
});
