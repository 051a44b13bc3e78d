/** The client's `transport: 'sse'` against the real event streams of every adapter, on 127.0.0.1. */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { subscribe, type Message, type Subscription, type SubscribeOptions, type SubscriptionError } from 'longpoll-kit/client';
import { Broker, ConnectionLimiter, LongPollError, MemoryEngine } from '../src/index.js';
import { ADAPTERS, type AdapterName, type AnyOptions, startServer, type TestServer } from './support/servers.js';
import { delay, until, useCleanups } from './support/cleanups.js';

const cleanups = useCleanups();

/** The server, and the headers of every stream request it saw (read before any framework). */
async function serve<T>(adapter: AdapterName, broker: Broker<T>, options: AnyOptions = {}) {
  const limiter = new ConnectionLimiter();
  const server: TestServer = await startServer(adapter, broker, { limiter, ...options });
  const streams: IncomingMessage['headers'][] = [];
  server.server.prependListener('request', (req: IncomingMessage) => {
    if (req.headers.accept?.includes('text/event-stream')) streams.push({ ...req.headers });
  });
  cleanups.push(async () => {
    await server.close();
    await broker.close();
  });
  return { server, limiter, streams };
}

function sse<T>(url: string, options: SubscribeOptions = {}): Subscription<T> {
  const sub = subscribe<T>(url, { transport: 'sse', backoff: { initial: 50, max: 1000 }, ...options });
  cleanups.push(() => sub.close());
  return sub;
}

function collect<T>(sub: Subscription<T>) {
  const seen = { messages: [] as Message<T>[], errors: [] as SubscriptionError[], resets: [] as (string | undefined)[], opened: 0 };
  sub.on('message', (m) => seen.messages.push(m));
  sub.on('error', (e) => seen.errors.push(e));
  sub.on('reset', (e) => seen.resets.push(e.earliestCursor));
  sub.on('open', () => seen.opened++);
  return seen;
}

describe.each(ADAPTERS)("transport: 'sse' against the %s adapter", (adapter) => {
  it('delivers every message once and in order across streams the server ends, resuming with Last-Event-ID', async () => {
    const broker = new Broker<number>();
    // Streams of about 300 ms: the client reconnects several times while messages keep coming.
    const { server, streams } = await serve(adapter, broker, { maxStream: 300, retry: 20, heartbeat: 100 });
    const sub = sse<number>(server.url('room'));
    const seen = collect(sub);
    await until(() => seen.opened === 1);
    for (let i = 0; i < 40; i++) {
      await broker.publish('room', i);
      await delay(25);
    }
    await until(() => seen.messages.length === 40, 3000, 'every message');
    await delay(100);
    expect(seen.messages.map((m) => m.data)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(seen.errors).toEqual([]);
    expect(streams.length).toBeGreaterThan(2);
    // Every reconnect names where the last stream stopped; the first had no position yet.
    expect(streams[0]!['last-event-id']).toBeUndefined();
    expect(streams.slice(1).every((headers) => typeof headers['last-event-id'] === 'string')).toBe(true);
    expect(sub.cursor).toBe((await broker.read('room', { cursor: sub.cursor })).cursor);
  });

  it('follows many channels in one stream with the channels option', async () => {
    const broker = new Broker<string>();
    const { server, streams } = await serve(adapter, broker);
    await broker.publish('room:1', 'r1');
    const sub = sse<string>(`${server.origin}/channels`, { channels: ['room:1', 'presence:1'] });
    const seen = collect(sub);
    await until(() => seen.messages.length === 1);
    await broker.publish('presence:1', 'p1');
    await broker.publish('room:1', 'r2');
    await until(() => seen.messages.length === 3);
    expect(seen.messages.map((m) => `${m.channel}=${m.data}`)).toEqual(['room:1=r1', 'presence:1=p1', 'room:1=r2']);
    expect(streams).toHaveLength(1);
    // The composite cursor resumes a poll over the same channels: nothing new after it.
    const poll = subscribe<string>(`${server.origin}/channels`, { channels: ['room:1', 'presence:1'], cursor: sub.cursor, wait: 0 });
    cleanups.push(() => poll.close());
    const polled = collect(poll);
    await until(() => polled.opened === 1);
    expect(polled.messages).toEqual([]);
  });

  it('emits reset when its cursor expired, then reads what is retained', async () => {
    const broker = new Broker<number>({ engine: new MemoryEngine({ capacity: 2 }) });
    const { server } = await serve(adapter, broker);
    const first = await broker.publish('room', 1);
    for (let i = 2; i <= 5; i++) await broker.publish('room', i);
    const sub = sse<number>(server.url('room'), { cursor: first.cursor });
    const seen = collect(sub);
    await until(() => seen.messages.length === 2);
    expect(seen.resets).toEqual([expect.any(String)]);
    expect(seen.messages.map((m) => m.data)).toEqual([4, 5]);
  });

  it('gives up on a 401 from authorize, and frees the stream and its lease on close()', async () => {
    const broker = new Broker<number>();
    const { server, limiter } = await serve(adapter, broker, {
      authorize: (_req, { channel }) => {
        if (channel === 'secret') throw new LongPollError('unauthorized', 'no');
        return true;
      },
    });
    const refused = sse(server.url('secret'));
    const refusedSeen = collect(refused);
    await until(() => refused.closed);
    expect(refusedSeen.errors).toEqual([expect.objectContaining({ status: 401, fatal: true })]);
    const sub = sse(server.url('room'));
    const seen = collect(sub);
    await until(() => seen.opened === 1 && limiter.stats().total === 1);
    sub.close();
    await until(() => limiter.stats().total === 0 && broker.stats().waiters === 0, 2000, 'the lease and the waiter released');
  });
});
