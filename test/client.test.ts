import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { subscribe, type Message, type Subscription, SubscriptionError } from 'longpoll-kit/client';
import { Broker, LongPollError } from '../src/index.js';
import { ADAPTERS, type AdapterName, type AnyOptions, startServer, type TestServer } from './support/servers.js';
import { delay, until as untilWithin, useCleanups } from './support/cleanups.js';

// The client against real servers of every adapter, over real sockets on 127.0.0.1. Timing
// (backoff, Retry-After, deadlines) is specified with fake timers in client-timing.test.ts.
//
// "No socket held" is asserted on the socket that carried the poll. After an abort, Node 20's
// fetch (undici 6) also opens one spare connection that never carries a request and closes
// after its 4 s keep-alive timeout (nodejs/undici#5845); that is undici's, not the client's.

const cleanups = useCleanups();
/** {@link untilWithin} with this file's 2 s default. */
const until = (check: () => boolean, ms = 2000, what?: string) => untilWithin(check, ms, what);

/** A bare node:http server on 127.0.0.1 answering polls with `handle`, closed after the test. */
async function rawServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string }> {
  const server = createServer(handle);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/channels/room` };
}

/**
 * What the server saw: every request, when it came, whether its answer is still open, and
 * whether the socket that carried it is still connected.
 */
interface RequestLog {
  readonly requests: { url: URL; at: number; open: boolean; connected: boolean }[];
  open(): number;
}

function logRequests(server: TestServer): RequestLog {
  const requests: RequestLog['requests'] = [];
  server.server.on('request', (req: IncomingMessage, res) => {
    const entry = { url: new URL(req.url ?? '/', server.origin), at: Date.now(), open: true, connected: true };
    requests.push(entry);
    res.once('close', () => (entry.open = false));
    req.socket.once('close', () => (entry.connected = false));
  });
  return { requests, open: () => requests.filter((r) => r.open).length };
}


async function serve<T>(
  adapter: AdapterName,
  broker: Broker<T>,
  options: AnyOptions = {},
): Promise<TestServer & RequestLog> {
  const server = await startServer(adapter, broker, options);
  cleanups.push(async () => {
    await server.close();
    await broker.close();
  });
  return Object.assign(server, logRequests(server));
}

function track<T>(sub: Subscription<T>): Subscription<T> {
  cleanups.push(() => sub.close());
  return sub;
}

function collect<T>(sub: Subscription<T>) {
  const seen = { messages: [] as T[], errors: [] as SubscriptionError[], resets: [] as (string | undefined)[], opened: 0, closed: 0 };
  sub.on('message', (m) => seen.messages.push(m.data));
  sub.on('error', (e) => seen.errors.push(e));
  sub.on('reset', (e) => seen.resets.push(e.earliestCursor));
  sub.on('open', () => seen.opened++);
  sub.on('close', () => seen.closed++);
  return seen;
}

describe.each(ADAPTERS)('the client against the %s adapter', (adapter) => {
  it('delivers every message in publish order, to listeners and to the async iterator', async () => {
    const broker = new Broker<number>();
    const server = await serve(adapter, broker);
    const sub = track(subscribe<number>(server.url('room'), { wait: 5000, limit: 3 }));
    const seen = collect(sub);
    const read: number[] = [];
    const reading = (async () => {
      for await (const message of sub) {
        read.push(message.data);
        if (read.length === 20) break; // leaving the loop closes the subscription
      }
    })();
    await until(() => seen.opened === 1 || broker.stats().waiters === 1, 2000, 'the first poll');
    for (let i = 0; i < 20; i++) {
      await broker.publish('room', i);
      if (i % 7 === 0) await delay(5); // some messages arrive held, some as a backlog
    }
    await reading;
    expect(read).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(seen.messages).toEqual(read);
    expect(seen.errors).toEqual([]);
    expect(sub.closed).toBe(true);
    expect(seen.closed).toBe(1);
    expect(server.requests.every((r) => Number(r.url.searchParams.get('limit')) <= 3)).toBe(true);
    await until(() => broker.stats().waiters === 0 && server.open() === 0, 500, 'no held poll');
  });

  it('resumes from the cursor of an earlier subscription, with nothing repeated or skipped', async () => {
    const broker = new Broker<string>();
    const server = await serve(adapter, broker);
    await broker.publish('room', 'a');
    await broker.publish('room', 'b');
    const first = track(subscribe<string>(server.url('room'), { wait: 5000 }));
    const before = collect(first);
    await until(() => before.messages.length === 2);
    first.close();
    await broker.publish('room', 'c');
    await broker.publish('room', 'd');

    const second = track(subscribe<string>(server.url('room'), { wait: 5000, cursor: first.cursor }));
    const after = collect(second);
    await until(() => after.messages.length === 2);
    await broker.publish('room', 'e');
    await until(() => after.messages.length === 3);
    expect(before.messages).toEqual(['a', 'b']);
    expect(after.messages).toEqual(['c', 'd', 'e']);
    expect(second.cursor).not.toBe(first.cursor);
  });

  it('emits reset and then new messages when the server restarts with a fresh memory engine', async () => {
    const first = new Broker<number>();
    const before = await startServer(adapter, first);
    const { port } = before.server.address() as AddressInfo;
    const sub = track(subscribe<number>(before.url('room'), { wait: 5000, backoff: { initial: 20, max: 100 } }));
    const seen = collect(sub);
    await first.publish('room', 1);
    await until(() => seen.messages.length === 1);
    // The process dies while it holds the client's next poll (there is a turn of the event loop
    // between two polls: without this, a busy machine may restart it before that poll is sent).
    await until(() => first.stats().waiters === 1, 2000, 'the next held poll');
    const staleCursor = sub.cursor;

    await before.close(); // the process "dies": held poll and sockets cut
    await first.close();
    const second = new Broker<number>();
    await second.publish('room', 2); // published after the restart, before the client is back
    const after = await startServer(adapter, second); // a new process with a new history...
    await after.close();
    after.server.listen(port, '127.0.0.1'); // ...on the same port
    await once(after.server, 'listening');
    cleanups.push(async () => {
      await after.close();
      await second.close();
    });

    await until(() => seen.messages.length === 2, 5000, 'the rehydration');
    expect(seen.resets).toHaveLength(1);
    expect(seen.resets[0]).toEqual(expect.any(String));
    expect(seen.resets[0]).not.toBe(staleCursor);
    expect(seen.errors.length).toBeGreaterThan(0); // the outage, retried
    expect(seen.errors.every((e) => !e.fatal)).toBe(true);
    await second.publish('room', 3);
    await until(() => seen.messages.length === 3);
    expect(seen.messages).toEqual([1, 2, 3]);
    expect(seen.opened).toBe(2); // connected, then reconnected
    expect(sub.closed).toBe(false);
  });

  it('follows many channels in one poll with the channels option, and keeps its cursor when the list changes', async () => {
    const broker = new Broker<string>();
    const server = await serve(adapter, broker);
    await broker.publish('room:1', 'r1');
    await broker.publish('presence:1', 'p1');
    const prefix = `${server.origin}/channels`;
    const first = track(subscribe<string>(prefix, { channels: ['room:1', 'presence:1'], wait: 5000 }));
    const seen: string[] = [];
    first.on('message', (m) => seen.push(`${m.channel}=${m.data}`));
    await until(() => seen.length === 2 && broker.stats().waiters === 1, 2000, 'the backlog, then one held poll');
    await broker.publish('presence:1', 'p2');
    await until(() => seen.length === 3);
    expect(seen.sort()).toEqual(['presence:1=p1', 'presence:1=p2', 'room:1=r1']);
    // (Express has rewritten req.url to its mount point before this log sees it: no pathname check.)
    expect(server.requests.map((r) => r.url.searchParams.get('channels'))).toEqual(server.requests.map(() => 'room:1,presence:1'));
    first.close();
    await until(() => broker.stats().waiters === 0, 1000, 'the poll released');
    // The same cursor with another list: room:1 goes on after r1, news:1 is read from the start.
    await broker.publish('room:1', 'r2');
    await broker.publish('news:1', 'n1');
    const second = track(subscribe<string>(prefix, { channels: ['room:1', 'news:1'], cursor: first.cursor, wait: 5000 }));
    const next: string[] = [];
    second.on('message', (m) => next.push(`${m.channel}=${m.data}`));
    await until(() => next.length === 2);
    await delay(50);
    expect(next.sort()).toEqual(['news:1=n1', 'room:1=r2']);
  });

  it('leaves no request, waiter or socket held on the server after close()', async () => {
    const broker = new Broker<number>();
    const server = await serve(adapter, broker);
    const sub = track(subscribe<number>(server.url('room'), { wait: 20_000 }));
    const seen = collect(sub);
    await until(() => broker.stats().waiters === 1, 2000, 'the held poll');
    const requests = server.requests.length; // the first poll, answered at once, then the held one
    sub.close();
    expect(seen.closed).toBe(1);
    await until(() => broker.stats().waiters === 0 && server.open() === 0, 500, 'the poll released');
    await until(() => !server.requests.at(-1)!.connected, 500, 'its socket closed');
    await delay(50);
    expect(server.requests).toHaveLength(requests); // and it did not poll again
    expect(seen.errors).toEqual([]);
  });

  it('leaves no request, waiter or socket held on the server after its AbortSignal aborts', async () => {
    const broker = new Broker<number>();
    const server = await serve(adapter, broker);
    const controller = new AbortController();
    const sub = track(subscribe<number>(server.url('room'), { wait: 20_000, signal: controller.signal }));
    const seen = collect(sub);
    await until(() => broker.stats().waiters === 1, 2000, 'the held poll');
    const requests = server.requests.length;
    controller.abort();
    expect(sub.closed).toBe(true);
    expect(seen.closed).toBe(1);
    await until(() => broker.stats().waiters === 0 && server.open() === 0, 500, 'the poll released');
    await until(() => !server.requests.at(-1)!.connected, 500, 'its socket closed');
    await delay(50);
    expect(server.requests).toHaveLength(requests); // and it did not poll again
  });

  it.each([
    [400, 'invalid_cursor', {}, { cursor: 'not-a-cursor' }],
    [401, 'unauthorized', { authorize: (): Promise<boolean> => Promise.reject(new LongPollError('unauthorized', 'Who are you?')) }, {}],
    [403, 'forbidden', { authorize: (): boolean => false }, {}],
  ] as const)('does not retry a %i: error fires, the subscription closes, the loop throws', async (status, code, serverOptions, clientOptions) => {
    const broker = new Broker<number>();
    const server = await serve(adapter, broker, serverOptions);
    const sub = track(subscribe<number>(server.url('room'), { ...clientOptions, backoff: { initial: 1, max: 1 } }));
    const seen = collect(sub);
    const loop = (async () => {
      for await (const _ of sub) {
        // nothing arrives
      }
    })();
    await expect(loop).rejects.toMatchObject({ name: 'SubscriptionError', status, code, fatal: true });
    expect(sub.closed).toBe(true);
    expect(seen.errors).toHaveLength(1);
    expect(seen.errors[0]).toBeInstanceOf(SubscriptionError);
    expect(seen.closed).toBe(1);
    await delay(30);
    expect(server.requests).toHaveLength(1);
  });

  it('does not retry a 404 (a URL outside the prefix)', async () => {
    const broker = new Broker<number>();
    const server = await serve(adapter, broker);
    const sub = track(subscribe<number>(`${server.url('room')}/deeper`, { backoff: { initial: 1, max: 1 } }));
    const seen = collect(sub);
    await until(() => sub.closed);
    expect(seen.errors).toMatchObject([{ status: 404, fatal: true }]);
    await delay(30);
    expect(server.requests).toHaveLength(1);
  });

  it('waits out the Retry-After of a 429, then gets its poll in', async () => {
    const broker = new Broker<number>();
    const { ConnectionLimiter } = await import('../src/index.js');
    const server = await serve(adapter, broker, { limiter: new ConnectionLimiter({ perClient: 1 }) });
    const holder = track(subscribe<number>(server.url('a'), { wait: 20_000 }));
    await until(() => broker.stats().waiters === 1, 2000, 'the first poll');
    // A backoff step far below the Retry-After: the retry waits what the server asked.
    const sub = track(subscribe<number>(server.url('b'), { wait: 20_000, backoff: { initial: 1, max: 10_000 } }));
    const seen = collect(sub);
    await until(() => seen.errors.length === 1);
    const [refused] = seen.errors;
    expect(refused).toMatchObject({ status: 429, code: 'limit_exceeded', fatal: false });
    expect([1000, 2000]).toContain(refused!.retryIn); // the limiter says 1 or 2 s
    holder.close();
    const attempts = () => server.requests.filter((r) => r.url.pathname.endsWith('/b'));
    // the refused poll; the retry, answered at once; then the held poll
    await until(() => attempts().length === 3 && broker.stats().waiters === 1, 3000, 'the retried poll');
    const [refusedAt, retriedAt] = attempts().map((r) => r.at);
    expect(retriedAt! - refusedAt!).toBeGreaterThanOrEqual(refused!.retryIn! - 50);
    expect(seen.errors).toHaveLength(1);
  });
});

describe('the client against a real server', () => {
  it.each([204, 304] as const)('follows the Longpoll-Cursor header through %i timeouts', async (timeoutStatus) => {
    const broker = new Broker<number>();
    const server = await serve('node', broker, { timeoutStatus });
    await broker.publish('room', 0);
    const sub = track(subscribe<number>(server.url('room'), { wait: 100 }));
    const seen = collect(sub);
    await until(() => seen.messages.length === 1);
    await until(() => server.requests.length >= 4, 2000, 'a few timeouts');
    await broker.publish('room', 1);
    await until(() => seen.messages.length === 2);
    expect(seen.messages).toEqual([0, 1]);
    expect(seen.errors).toEqual([]);
    // Every re-poll after a timeout came at once and carried the header's cursor.
    const cursors = server.requests.slice(1).map((r) => r.url.searchParams.get('cursor'));
    expect(cursors.every((cursor) => cursor !== null && cursor !== '')).toBe(true);
  });

  it('opens at once on a quiet channel, then holds its polls', async () => {
    const broker = new Broker<number>();
    const server = await serve('node', broker);
    const sub = track(subscribe<number>(server.url('quiet'), { wait: 20_000 }));
    const seen = collect(sub);
    await until(() => seen.opened === 1, 500, 'open');
    await until(() => broker.stats().waiters === 1, 500, 'the held poll');
    expect(server.requests.map((r) => r.url.searchParams.get('wait'))).toEqual(['0', '20']);
    expect(server.requests[1]!.url.searchParams.get('cursor')).toEqual(expect.any(String));
  });

  it('re-polls at once after a 200 timeout', async () => {
    const broker = new Broker<number>();
    const server = await serve('node', broker);
    // A backoff would show as a gap of seconds; a timeout is followed at once by the next poll.
    const sub = track(subscribe<number>(server.url('room'), { wait: 100, backoff: { initial: 10_000, max: 10_000 } }));
    const seen = collect(sub);
    await until(() => server.requests.length >= 4, 3000, 'a few timeouts');
    sub.close();
    // From the second request on (the first is answered at once), each follows a held one.
    const gaps = server.requests.slice(2, 4).map((r, i) => r.at - server.requests[i + 1]!.at);
    // The server answers after 100 ms minus up to 1/16 of jitter; the client comes straight back.
    expect(gaps.every((gap) => gap >= 90 && gap < 1000)).toBe(true);
    expect(seen.opened).toBe(1);
  });

  it('pauses polling while the iterator buffer is full, and drops nothing', async () => {
    const broker = new Broker<number>();
    const server = await serve('node', broker);
    for (let i = 0; i < 10; i++) await broker.publish('room', i);
    const sub = track(subscribe<number>(server.url('room'), { wait: 5000, bufferSize: 3 }));
    const iterator = sub[Symbol.asyncIterator]();
    await until(() => server.requests.length === 1 && server.open() === 0);
    await delay(100);
    // One answer filled the buffer: no second request until the reader makes room.
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]!.url.searchParams.get('limit')).toBe('3');
    const read: number[] = [];
    for (let i = 0; i < 10; i++) {
      const next = await iterator.next();
      read.push((next.value as Message<number>).data);
    }
    expect(read).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(server.requests.every((r) => Number(r.url.searchParams.get('limit')) <= 3)).toBe(true);
    await iterator.return?.();
    expect(sub.closed).toBe(true);
  });

  it('abandons a request the server never answers, aborts it, and retries', async () => {
    const held: IncomingMessage[] = [];
    const closed: IncomingMessage[] = [];
    const silent = createServer((req) => {
      held.push(req);
      req.socket.once('close', () => closed.push(req));
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    cleanups.push(async () => {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    });
    const { port } = silent.address() as AddressInfo;
    const sub = track(
      subscribe(`http://127.0.0.1:${port}/channels/room`, { wait: 100, timeoutMargin: 100, backoff: { initial: 10, max: 10 } }),
    );
    const seen = collect(sub);
    await until(() => held.length === 2, 2000, 'the retry');
    // Until the server has answered once, polls ask for an answer at once: the deadline is the margin.
    expect(seen.errors[0]).toMatchObject({ fatal: false, message: expect.stringMatching(/No answer within 100 ms/) });
    await until(() => closed.length === 1, 500, 'the abandoned request closed');
    sub.close();
    await until(() => closed.length === 2, 500, 'the second request closed');
  });

  it('hands an iterator created late the messages the channel retained, then new ones', async () => {
    const broker = new Broker<string>();
    const server = await serve('node', broker);
    for (const text of ['a', 'b', 'c']) await broker.publish('room', text);
    const sub = track(subscribe<string>(server.url('room'), { wait: 5000, signal: AbortSignal.timeout(3000) })); // bounds the loop
    await until(() => server.requests.length === 2, 2000, 'the answer and the held poll'); // a, b and c came in
    await delay(50);
    const read: string[] = [];
    for await (const message of sub) {
      read.push(message.data);
      if (read.length === 3) await broker.publish('room', 'd');
      if (read.length === 4) break;
    }
    expect(read).toEqual(['a', 'b', 'c', 'd']);
    expect(sub.closed).toBe(true);
  });

  it('reads a large backlog whose body trickles in for longer than timeoutMargin', async () => {
    const messages = Array.from({ length: 50 }, (_, i) => ({ id: `01TRICKLE${String(i).padStart(4, '0')}`, channel: 'room', data: i, publishedAt: '2026-01-01T00:00:00.000Z' }));
    const body = Buffer.from(JSON.stringify({ messages, cursor: 'c50', timedOut: false }));
    const slow = await rawServer((req, res) => {
      if (new URL(req.url!, 'http://x').searchParams.has('cursor')) return; // the next poll: held until closed
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      const parts = 8;
      let sent = 0;
      const timer = setInterval(() => {
        res.write(body.subarray((sent * body.length) / parts, ((sent + 1) * body.length) / parts));
        if (++sent === parts) {
          clearInterval(timer);
          res.end();
        }
      }, 100);
      res.once('close', () => clearInterval(timer));
    });
    const sub = track(subscribe<number>(slow.url, { timeoutMargin: 300, backoff: { initial: 10_000, max: 10_000 } }));
    const seen = collect(sub);
    await until(() => seen.messages.length === 50, 3000, 'the whole backlog'); // 800 ms of body, past the 300 ms deadline
    expect(seen.errors).toEqual([]);
    expect(sub.cursor).toBe('c50');
  });

  it.each([
    ['an empty 200 at once', (res: ServerResponse) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"messages":[],"cursor":"c1","timedOut":true}')],
    ['a 503 with Retry-After: 0', (res: ServerResponse) => res.writeHead(503, { 'retry-after': '0' }).end()],
    ['a 503 with Retry-After: 1.5', (res: ServerResponse) => res.writeHead(503, { 'retry-after': '1.5' }).end()],
  ])('polls a server that answers every poll with %s a few times, not hundreds of times a second', async (_, answer) => {
    let requests = 0;
    const eager = await rawServer((_req, res) => {
      requests++;
      answer(res);
    });
    const sub = track(subscribe<number>(eager.url));
    await delay(1500);
    sub.close();
    console.log(`client against a server answering at once: ${requests} requests in 1.5 s`);
    expect(requests).toBeLessThan(25);
    expect(requests).toBeGreaterThanOrEqual(2);
  });

  it('throws invalid_option for an option that cannot work', () => {
    expect(() => subscribe('http://127.0.0.1:9/channels/room', { wait: -1 })).toThrow(expect.objectContaining({ code: 'invalid_option' }));
    expect(() => subscribe('http://127.0.0.1:9/channels/room', { backoff: { initial: 1000, max: 10 } })).toThrow(/backoff\.max/);
    expect(() => subscribe('http://127.0.0.1:9/channels/room', { bufferSize: 0 })).toThrow(/bufferSize/);
  });
});
