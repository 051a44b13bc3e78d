/**
 * Hostile clients of event streams against every adapter, on real sockets: requests pipelined
 * behind a stream, streams opened and dropped in a hot loop, a reader that never reads while
 * messages flood, 32-channel streams under a flood of publishes, bad `Last-Event-ID`s, an
 * `authorize` that hangs, an exhausted rate, `broker.close()` under thousands of streams, and a
 * server timeout shorter than the heartbeat. A stream holds one lease and at most one waiter, and
 * gives both back, with its timers, when its connection needs it no more.
 */
import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter, MemoryEngine } from '../../src/index.js';
import { ADAPTERS, PREFIX, startServer, type AnyOptions, type TestServer } from '../support/servers.js';
import { openStream } from './events.js';
import { eventually, expectProblem, fillUntilBytesWait, send, until } from './requests.js';

setFlagsFromString('--expose-gc');
/** A full collection, as `--expose-gc` gives it, in a worker started without the flag. */
const collect = runInNewContext('gc') as () => void;

/** Heap plus array buffers after full collections. */
function used(): number {
  for (let i = 0; i < 3; i++) collect();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

/** How many of each kind of handle keep the process alive (sockets, timers…). */
function handles(): Map<string, number> {
  const counted = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counted.set(kind, (counted.get(kind) ?? 0) + 1);
  return counted;
}

/** Kinds with more live handles now than in `before`. */
function grown(before: Map<string, number>): string[] {
  return [...handles()].filter(([kind, count]) => count > (before.get(kind) ?? 0)).map(([kind, count]) => `${kind}: ${before.get(kind) ?? 0} → ${count}`);
}

/** A raw connection: what it received so far, and when it closed. */
interface Raw {
  readonly socket: Socket;
  readonly text: () => string;
  readonly closed: Promise<void>;
}

async function raw(server: TestServer, request: string, read = true): Promise<Raw> {
  const socket = connect(Number(new URL(server.origin).port), '127.0.0.1');
  socket.on('error', () => {}); // a reset by the server is an ending like any other here
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let text = '';
  if (read) socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  else socket.pause();
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(request);
  return { socket, text: () => text, closed };
}

function streamRequest(path: string, headers = ''): string {
  return `GET ${PREFIX}${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n${headers}\r\n`;
}

/** The channels `c0`…`c{count-1}`. */
const channelList = (count: number) => Array.from({ length: count }, (_, i) => `c${i}`);

describe.each(ADAPTERS)('hostile event stream clients, %s adapter', (adapter) => {
  let broker: Broker<unknown>;
  let limiter: ConnectionLimiter;
  let server: TestServer | undefined;
  const sockets: Socket[] = [];

  async function start(options: AnyOptions = {}, engine?: MemoryEngine, limits: ConstructorParameters<typeof ConnectionLimiter>[0] = { perClient: 10_000 }): Promise<TestServer> {
    broker = new Broker<unknown>(engine ? { engine } : {});
    limiter = new ConnectionLimiter(limits);
    server = await startServer(adapter, broker, { limiter, ...options });
    return server;
  }

  const released = () => broker.stats().waiters === 0 && limiter.stats().total === 0;

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await server?.close();
    server = undefined;
    await broker?.close();
  });

  // A fetch runtime owns its connections (see hostile.test.ts): the Node adapters hold one
  // request per connection, and a request pipelined behind a stream ends it.
  it.skipIf(adapter === 'fetch')('ends a stream normally when a request is pipelined behind it, and answers that request', async () => {
    const server = await start();
    await broker.publish('other', 'hello');
    const connection = await raw(server, streamRequest('/room'));
    sockets.push(connection.socket);
    await until(() => broker.stats().waiters === 1 && limiter.stats().total === 1, 'the stream waits');
    connection.socket.write(`GET ${PREFIX}/other?wait=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await until(() => /\r\n0\r\n\r\nHTTP\/1\.1 200 [^]*"hello"/.test(connection.text()), 'the stream ends and the poll behind it is answered');
    expect(connection.text()).toMatch(/^HTTP\/1\.1 200 [^]*text\/event-stream[^]*\r\n\r\n[0-9a-f]+\r\nretry: /);
    await until(released, 'the stream and the poll hold nothing');
    // The connection is still usable: a stream behind the poll is served as usual.
    connection.socket.write(streamRequest('/room'));
    await until(() => broker.stats().waiters === 1 && limiter.stats().total === 1, 'a new stream waits on the same connection');
    connection.socket.destroy();
    await until(released, 'nothing is held after the connection went');
  });

  it.skipIf(adapter === 'fetch')('ends a stream (or answers a poll) at once when a request was pipelined behind it while authorize ran', async () => {
    const server = await start({ authorize: () => new Promise<boolean>((resolve) => setTimeout(resolve, 200, true)) });
    await broker.publish('other', 'hello');
    const poll = `GET ${PREFIX}/other?wait=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
    const streamed = await raw(server, streamRequest('/room') + poll);
    const held = await raw(server, `GET ${PREFIX}/room?wait=20 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n${poll}`);
    sockets.push(streamed.socket, held.socket);
    // Not after maxStream (5 minutes) or the wait (20 s): as soon as authorize let them start.
    await until(() => /\r\n0\r\n\r\nHTTP\/1\.1 200 [^]*"hello"/.test(streamed.text()), 'the stream ends and the poll behind it is answered');
    expect(streamed.text()).toMatch(/^HTTP\/1\.1 200 [^]*text\/event-stream[^]*\r\nretry: /);
    await until(() => /"timedOut":true[^]*HTTP\/1\.1 200 [^]*"hello"/.test(held.text()), 'the poll answers as a timeout and the one behind it is answered');
    await until(released, 'nothing is held');
  });

  it('holds one stream per connection when a client pipelines many (a fetch runtime: all), and frees them when it goes', async () => {
    const server = await start();
    const requests = Array.from({ length: 50 }, (_, i) => streamRequest(i % 2 ? '/room' : '?channels=room,other')).join('');
    const connection = await raw(server, requests);
    sockets.push(connection.socket);
    const held = adapter === 'fetch' ? 50 : 1;
    await until(() => broker.stats().waiters === held && limiter.stats().total === held, `${held} streams are held`);
    if (adapter !== 'fetch') {
      // Each stream but the last ended normally, in order.
      await until(() => (connection.text().match(/\r\n0\r\n\r\n/g) ?? []).length === 49, '49 streams ended');
      expect(connection.text().match(/HTTP\/1\.1 200 /g)).toHaveLength(50);
    }
    connection.socket.destroy();
    await until(released, 'nothing is held after the connection went');
  });

  it('holds nothing after streams are opened and dropped in a hot loop', async () => {
    const server = await start({ heartbeat: 60_000 });
    await broker.publish('room', 'x'.repeat(1000));
    // Warm up: the first stream creates the adapter's lazily made parts.
    const first = await raw(server, streamRequest('/room'));
    await until(() => broker.stats().waiters === 1, 'the first stream waits');
    first.socket.destroy();
    await first.closed;
    await until(released, 'the first stream is gone');
    const before = handles();
    for (let round = 0; round < 10; round++) {
      const open = await Promise.all(
        Array.from({ length: 30 }, (_, i) => raw(server, streamRequest(i % 3 ? '/room' : `?channels=room,c${i}`, i % 2 ? 'Last-Event-ID: \r\n' : ''))),
      );
      // A third go before the server has read the request, a third once it answered, a third while held.
      for (const [i, connection] of open.entries()) if (i % 3 === 0) connection.socket.destroy();
      await eventually(() => open.every((connection, i) => i % 3 === 0 || connection.text().includes('retry: ')), 2_000);
      for (const [i, connection] of open.entries()) if (i % 3 === 1) connection.socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 5));
      for (const connection of open) connection.socket.destroy();
      await Promise.all(open.map((connection) => connection.closed));
    }
    expect(await eventually(released, 2_000), `waiters ${broker.stats().waiters}, leases ${limiter.stats().total}`).toBe(true);
    expect(limiter.stats().clients).toBe(0);
    expect(limiter.stats().channels).toBe(0);
    expect(await eventually(() => grown(before).length === 0, 2_000), `handles that stayed: ${grown(before).join(', ')}`).toBe(true);
  });

  it('buffers at most one answer for a client that never reads while messages flood, and cuts it after sendTimeout', async () => {
    // A short history, so that what stays in memory is the stream's, not the engine's.
    const server = await start({ sendTimeout: 600 }, new MemoryEngine({ capacity: 8 }));
    const connection = await raw(server, streamRequest('/flood', ''), false);
    sockets.push(connection.socket);
    await until(() => broker.stats().waiters === 1, 'the stream waits');
    const baseline = used();
    const payload = 'x'.repeat(64 * 1024);
    // 40 MiB published, more than the socket buffers hold.
    for (let i = 0; i < 640; i++) await broker.publish('flood', payload);
    const growth = used() - baseline;
    // One answer of up to `limit` (100) messages may wait in the process, not the flood.
    expect(growth, `grew by ${(growth / 2 ** 20).toFixed(1)} MiB`).toBeLessThan(16 * 2 ** 20);
    // The flood goes on: once the kernel's buffers are full nothing drains, and sendTimeout later
    // the connection is cut (a stream that has caught up and waits is not stuck, whatever the
    // client reads, until it has something to write).
    const deadline = performance.now() + 8_000;
    while (!released() && performance.now() < deadline) {
      await broker.publish('flood', payload);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(released(), 'the stream was cut after sendTimeout').toBe(true);
    if (adapter !== 'fetch') {
      // The runtime's to close on a fetch runtime; the Node adapters destroy the socket.
      connection.socket.resume();
      await Promise.race([connection.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still open')), 3_000))]);
    }
  }, 20_000);

  it('cuts a stream ended by broker.close() whose end a client that reads nothing never takes, after sendTimeout', async () => {
    const server = await start({ sendTimeout: 500 }, new MemoryEngine({ capacity: 8 }));
    let accepted: Socket | undefined;
    server.server.on('connection', (socket: Socket) => (accepted = socket));
    const connection = await raw(server, streamRequest('/quiet'), false);
    sockets.push(connection.socket);
    await until(() => broker.stats().waiters === 1, 'the stream waits');
    // Small messages until the kernel's buffers are full and some bytes wait in the process,
    // while the stream, not yet over its high-water mark, waits for the next message.
    await fillUntilBytesWait(broker, 'quiet', accepted!);
    expect(accepted!.writableLength, 'bytes wait in the process').toBeGreaterThan(0);
    await broker.close();
    // The stream ended, but its end cannot be handed to the socket: the send clock still runs.
    expect(await eventually(() => limiter.stats().total === 0, 4_000), 'the lease is released').toBe(true);
    // A fetch runtime's socket is the runtime's; the Node adapters cut it.
    if (adapter !== 'fetch') expect(accepted!.destroyed).toBe(true);
  }, 15_000);

  it('delivers a flood on 32 channels to a many-channel stream once each, in order, with ids to resume from', async () => {
    const server = await start({}, undefined, { perClient: 100, perChannel: 100 });
    // One more than maxChannels, or a channel twice: refused before the stream.
    for (const list of [channelList(33), ['c0', 'c1', 'c0']]) {
      const refused = await send(`${server.origin}${PREFIX}?channels=${list.join(',')}`, { headers: { accept: 'text/event-stream' } });
      expectProblem(refused, 400, 'invalid_channels');
    }
    const channels = channelList(32);
    const stream = await openStream(`${server.origin}${PREFIX}?channels=${channels.join(',')}`);
    expect(stream.status).toBe(200);
    await stream.waitFor((events) => events.some((event) => event.id !== undefined), 'the starting id');
    const perChannel = 30;
    await Promise.all(
      channels.map(async (channel) => {
        for (let n = 0; n < perChannel; n++) await broker.publish(channel, n);
      }),
    );
    const total = channels.length * perChannel;
    await stream.waitFor((events) => events.filter((event) => event.event === 'message').length >= total, 'every message', 10_000);
    const seen = new Map<string, unknown[]>();
    for (const message of stream.messages()) seen.set(message.channel, [...(seen.get(message.channel) ?? []), message.data]);
    for (const channel of channels) expect(seen.get(channel), channel).toEqual(Array.from({ length: perChannel }, (_, n) => n));
    const events = stream.events.filter((event) => event.event === 'message');
    expect(events.length).toBe(total);
    expect(events.every((event) => event.id !== undefined && event.id !== '')).toBe(true);
    // One lease and one waiter, however many channels.
    await until(() => broker.stats().waiters === 1, 'the stream waits again, once');
    expect(limiter.stats().total).toBe(1);
    // Resuming from any message's id brings exactly what came after it.
    const cut = 500;
    const resumed = await openStream(`${server.origin}${PREFIX}?channels=${channels.join(',')}`, { 'last-event-id': events[cut - 1]!.id! });
    await resumed.waitFor((got) => got.filter((event) => event.event === 'message').length >= total - cut, 'the rest', 10_000);
    const rest = stream.messages().slice(cut).map((message) => `${message.channel}:${String(message.data)}`);
    expect(resumed.messages().map((message) => `${message.channel}:${String(message.data)}`).sort()).toEqual(rest.sort());
    stream.close();
    resumed.close();
    await until(released, 'both streams hold nothing after they went');
  });

  it('resets a many-channel stream whose Last-Event-ID expired on one channel, losing nothing on the others', async () => {
    const server = await start({}, new MemoryEngine({ capacity: 2 }));
    await broker.publish('a', 'a1');
    await broker.publish('b', 'b1');
    const first = await openStream(`${server.origin}${PREFIX}?channels=a,b`);
    await first.waitFor((events) => events.filter((event) => event.event === 'message').length === 2, 'the history');
    const resumeFrom = first.events.filter((event) => event.event === 'message').at(-1)!.id!;
    first.close();
    // `a` moves past its retained history; `b` gets one more.
    for (let n = 2; n <= 5; n++) await broker.publish('a', `a${n}`);
    await broker.publish('b', 'b2');
    const resumed = await openStream(`${server.origin}${PREFIX}?channels=a,b`, { 'last-event-id': resumeFrom });
    expect(resumed.status).toBe(200);
    await resumed.waitFor((events) => events.filter((event) => event.event === 'message').length === 3, 'the retained messages');
    const reset = resumed.events.find((event) => event.event === 'reset');
    expect(reset, 'a reset event').toBeDefined();
    expect(JSON.parse(reset!.data!)).toEqual({ earliestCursor: reset!.id });
    expect(resumed.messages().map((message) => message.data).sort()).toEqual(['a4', 'a5', 'b2']);
    resumed.close();
    await until(released, 'nothing is held');
  });

  it('refuses a garbage, huge or foreign Last-Event-ID with 400 before the stream, taking nothing', async () => {
    const server = await start();
    const a = await broker.publish('a', 1);
    const b = await broker.publish('b', 1);
    const composite = await openStream(`${server.origin}${PREFIX}?channels=a,b`);
    await composite.waitFor((events) => events.some((event) => event.id !== undefined), 'a composite id');
    const compositeId = composite.events.find((event) => event.id !== undefined)!.id!;
    composite.close();
    await until(released, 'the composite stream is gone');
    const refused: [string, string][] = [
      ['/a', 'garbage'],
      ['/a', '%00%ff'],
      ['/a', 'é'.repeat(100)],
      ['/a', `${a.cursor}x`],
      ['/a', 'x'.repeat(8_000)],
      ['/a', b.cursor], // another channel's cursor
      ['/a', compositeId], // a many-channel stream's
      // (A composite of other channels is no error: a client may change its list of channels.)
      ['?channels=a,b', `${compositeId}.${compositeId}`],
      ['?channels=a,b', 'x'.repeat(8_000)],
    ];
    for (const [path, lastEventId] of refused) {
      const answer = await send(`${server.origin}${PREFIX}${path}`, { headers: { accept: 'text/event-stream', 'last-event-id': lastEventId } });
      expectProblem(answer, 400, 'invalid_cursor');
    }
    expect(limiter.stats().total).toBe(0);
    expect(broker.stats().waiters).toBe(0);
    // A valid one still resumes.
    const good = await openStream(server.url('a'), { 'last-event-id': a.cursor });
    await good.waitFor((events) => events.some((event) => event.id === a.cursor), 'the starting id');
    good.close();
  });

  it('answers 503 with Retry-After to a stream whose authorize never settles, holding nothing', async () => {
    const server = await start({ authorize: () => new Promise<boolean>(() => {}), authorizeTimeout: 200 });
    const started = performance.now();
    const answers = await Promise.all(
      [server.url('room'), `${server.origin}${PREFIX}?channels=a,b`].map((url) => send(url, { headers: { accept: 'text/event-stream' }, timeout: 3_000 })),
    );
    for (const answer of answers) {
      expectProblem(answer, 503, 'unavailable');
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(released()).toBe(true);
    expect(limiter.stats().clients).toBe(0);
  });

  it('takes nothing for streams whose clients leave while authorize runs', async () => {
    const server = await start({ authorize: () => new Promise<boolean>((resolve) => setTimeout(resolve, 150, true)) });
    const open = await Promise.all(Array.from({ length: 30 }, (_, i) => raw(server, streamRequest(i % 2 ? '/room' : '?channels=room,other'))));
    await new Promise((resolve) => setTimeout(resolve, 30));
    for (const connection of open) connection.socket.destroy();
    await Promise.all(open.map((connection) => connection.closed));
    // After authorize answered for all of them.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(released()).toBe(true);
    expect(limiter.stats().clients).toBe(0);
    expect(open.every((connection) => connection.text() === '')).toBe(true);
  });

  it('answers 429 limit rate before the stream when the rate is exhausted, holding nothing', async () => {
    const server = await start({}, undefined, { rate: { requests: 3, per: 60_000 } });
    for (let i = 0; i < 3; i++) expect((await send(server.url('room', 'wait=0'))).status).toBe(200);
    for (const url of [server.url('room'), `${server.origin}${PREFIX}?channels=a,b`]) {
      const refused = await send(url, { headers: { accept: 'text/event-stream' } });
      expect(expectProblem(refused, 429, 'limit_exceeded').limit).toBe('rate');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    expect(released()).toBe(true);
  });

  it('ends thousands of open streams normally on broker.close(), holding nothing after', async () => {
    const server = await start({ heartbeat: 60_000 });
    // Thousands on the plain Node adapter; the others share its connection code or their own
    // runtime's, and a few hundred each keep the file short.
    const count = adapter === 'node' ? 3_000 : 400;
    const before = handles();
    const open: Raw[] = [];
    for (let i = 0; i < count; i += 100) {
      open.push(...(await Promise.all(Array.from({ length: 100 }, (_, k) => raw(server, streamRequest(k % 4 ? `/s${k}` : `?channels=s${k},t${k}`))))));
    }
    sockets.push(...open.map((connection) => connection.socket));
    expect(await eventually(() => broker.stats().waiters === count && limiter.stats().total === count, 10_000), `${broker.stats().waiters} streams wait`).toBe(true);
    await broker.close();
    // Each body ends with the last chunk; the connection stays up for more requests.
    expect(await eventually(() => open.every((connection) => connection.text().endsWith('\r\n0\r\n\r\n')), 5_000), 'every stream ended').toBe(true);
    expect(limiter.stats().total).toBe(0);
    expect(broker.stats().waiters).toBe(0);
    for (const connection of open) connection.socket.destroy();
    await Promise.all(open.map((connection) => connection.closed));
    expect(await eventually(() => grown(before).length === 0, 3_000), `handles that stayed: ${grown(before).join(', ')}`).toBe(true);
  }, 30_000);

  // A fetch runtime's socket timeouts are its own (the adapter is given none).
  it.skipIf(adapter === 'fetch')('sends heartbeats within a server.timeout shorter than the heartbeat, so the stream is not cut', async () => {
    const server = await start({ heartbeat: 15_000 });
    server.server.timeout = 400;
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }) => warnings.push(warning.code ?? '');
    process.on('warning', onWarning);
    try {
      const stream = await openStream(server.url('room'));
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect(stream.ended(), 'the stream is still open after 2.75 server timeouts').toBe(false);
      expect(stream.events.filter((event) => event.comment === 'ping').length).toBeGreaterThanOrEqual(2);
      await broker.publish('room', 'still there');
      await stream.waitFor((events) => events.some((event) => event.event === 'message'), 'the message after the pings');
      stream.close();
    } finally {
      process.off('warning', onWarning);
    }
    await until(released, 'nothing is held after the stream went');
  });
});
