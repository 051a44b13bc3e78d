/** `Accept: text/event-stream` on the poll URLs: one stream per request, on every adapter. */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter, MemoryEngine } from '../../src/index.js';
import { ADAPTERS, PREFIX, startServer, type AnyOptions, type TestServer } from '../support/servers.js';
import { openStream, type StreamEvent } from './events.js';
import { eventually, expectProblem, json, send, until, type PollBody } from './requests.js';

const messageEvents = (events: StreamEvent[]) => events.filter((event) => event.event === 'message');

describe.each(ADAPTERS)('event streams, %s adapter', (adapter) => {
  let broker: Broker<unknown>;
  let limiter: ConnectionLimiter;
  let server: TestServer | undefined;

  async function start(options: AnyOptions = {}, engine?: MemoryEngine): Promise<TestServer> {
    broker = new Broker<unknown>(engine ? { engine } : {});
    limiter = new ConnectionLimiter();
    server = await startServer(adapter, broker, { limiter, ...options });
    return server;
  }

  afterEach(async () => {
    await server?.close();
    server = undefined;
    await broker?.close();
  });

  it('starts with retry and the starting id, then one event per message with the cursor after it', async () => {
    await start({ retry: 1234 });
    const first = await broker.publish('room', 'a');
    const stream = await openStream(server!.url('room', `cursor=${first.cursor}`));
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toBe('text/event-stream');
    expect(stream.headers.get('cache-control')).toBe('no-store');
    expect(stream.headers.get('x-accel-buffering')).toBe('no');
    await stream.waitFor((events) => events.length >= 1, 'the head arrives before any message');
    expect(stream.text()).toBe(`retry: 1234\nid: ${first.cursor}\n\n`);
    const sent = [await broker.publish('room', 'b'), await broker.publish('room', 'c')];
    await stream.waitFor((events) => messageEvents(events).length === 2, 'both messages arrive');
    expect(stream.messages()).toEqual([
      { id: sent[0]!.cursor, channel: 'room', data: 'b' },
      { id: sent[1]!.cursor, channel: 'room', data: 'c' },
    ]);
    expect(limiter.stats().total).toBe(1);
    stream.close();
    await until(() => limiter.stats().total === 0 && broker.stats().waiters === 0, 'the lease and the waiter go with the connection');
  });

  it('sends everything retained to a stream without a cursor, each message with its own id', async () => {
    await start();
    const sent = [await broker.publish('room', 1), await broker.publish('room', 2), await broker.publish('room', 3)];
    const stream = await openStream(server!.url('room'));
    await stream.waitFor((events) => messageEvents(events).length === 3, 'the history arrives');
    expect(stream.messages().map((message) => message.id)).toEqual(sent.map((message) => message.cursor));
    stream.close();
  });

  it('sends the starting id at once to a stream without a cursor on an empty channel', async () => {
    await start();
    const stream = await openStream(server!.url('empty'));
    await stream.waitFor((events) => events.some((event) => event.id !== undefined), 'an id');
    const { id } = stream.events.find((event) => event.id !== undefined)!;
    await broker.publish('empty', 'x');
    await stream.waitFor((events) => messageEvents(events).length === 1, 'the message');
    // The id resumes before the message.
    const resumed = json<PollBody>(await send(server!.url('empty', `wait=0&cursor=${id!}`)));
    expect(resumed.messages.map((message) => message.data)).toEqual(['x']);
    stream.close();
  });

  it('resumes from Last-Event-ID, which wins over ?cursor=', async () => {
    await start();
    const sent = [await broker.publish('room', 1), await broker.publish('room', 2), await broker.publish('room', 3)];
    const stream = await openStream(server!.url('room', `cursor=${sent[2]!.cursor}`), { 'last-event-id': sent[0]!.cursor });
    await stream.waitFor((events) => messageEvents(events).length === 2, 'the messages after Last-Event-ID');
    expect(stream.messages().map((message) => message.data)).toEqual([2, 3]);
    stream.close();
  });

  it('refuses a garbage Last-Event-ID or cursor with 400 before the stream, taking no lease', async () => {
    await start();
    expectProblem(await send(server!.url('room'), { headers: { accept: 'text/event-stream', 'last-event-id': 'garbage' } }), 400, 'invalid_cursor');
    expectProblem(await send(server!.url('room'), { headers: { accept: 'text/event-stream', 'last-event-id': 'x'.repeat(600) } }), 400, 'invalid_cursor');
    expectProblem(await send(server!.url('room', 'cursor=garbage'), { headers: { accept: 'text/event-stream' } }), 400, 'invalid_cursor');
    expect(limiter.stats().total).toBe(0);
  });

  it('answers the limits before the stream as ordinary problems (429 with Retry-After)', async () => {
    broker = new Broker<unknown>();
    limiter = new ConnectionLimiter({ perChannel: 1 });
    server = await startServer(adapter, broker, { limiter });
    const stream = await openStream(server.url('room'));
    await until(() => limiter.stats().total === 1, 'the stream holds a lease');
    const refused = await send(server.url('room'), { headers: { accept: 'text/event-stream' } });
    expectProblem(refused, 429, 'limit_exceeded');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    stream.close();
    await until(() => limiter.stats().total === 0, 'the lease is released');
  });

  it('asks authorize with action poll, and a refusal is a 403 before the stream', async () => {
    const asked: unknown[] = [];
    await start({
      authorize: (_request, access) => {
        asked.push(access);
        return access.channel !== 'secret';
      },
    });
    expectProblem(await send(server!.url('secret'), { headers: { accept: 'text/event-stream' } }), 403, 'forbidden');
    const stream = await openStream(server!.url('open'));
    expect(stream.status).toBe(200);
    expect(asked).toEqual([
      { channel: 'secret', action: 'poll' },
      { channel: 'open', action: 'poll' },
    ]);
    stream.close();
  });

  it('sends a heartbeat comment while idle and ends by itself after maxStream, releasing its lease', async () => {
    await start({ heartbeat: 100, maxStream: 800 });
    const stream = await openStream(server!.url('room'));
    await stream.waitFor((events) => events.filter((event) => event.comment === 'ping').length >= 2, 'two heartbeats');
    await stream.done;
    expect(stream.ended()).toBe(true);
    await until(() => limiter.stats().total === 0 && broker.stats().waiters === 0, 'nothing is held after the stream ended');
  });

  it('turns cursor_expired into a reset event and goes on from the earliest retained message', async () => {
    await start({}, new MemoryEngine({ capacity: 2 }));
    const old = await broker.publish('room', 1);
    await broker.publish('room', 2);
    await broker.publish('room', 3);
    await broker.publish('room', 4);
    const stream = await openStream(server!.url('room', `cursor=${old.cursor}`));
    expect(stream.status).toBe(200);
    await stream.waitFor((events) => messageEvents(events).length === 2, 'the retained messages after the reset');
    const reset = stream.events.find((event) => event.event === 'reset')!;
    expect(reset).toBeDefined();
    expect(JSON.parse(reset.data!)).toEqual({ earliestCursor: reset.id });
    expect(stream.messages().map((message) => message.data)).toEqual([3, 4]);
    expect(stream.events.indexOf(reset)).toBeLessThan(stream.events.findIndex((event) => event.event === 'message'));
    stream.close();
  });

  it('serves many channels with composite ids, from which a new stream resumes exactly', async () => {
    await start();
    const stream = await openStream(`${server!.origin}${PREFIX}?channels=a,b`);
    await stream.waitFor((events) => events.some((event) => event.id !== undefined), 'the starting id');
    await broker.publish('a', 1);
    await broker.publish('b', 1);
    await stream.waitFor((events) => messageEvents(events).length === 2, 'both channels');
    const afterFirst = messageEvents(stream.events)[0]!.id!;
    stream.close();
    await broker.publish('a', 2);
    const resumed = await openStream(`${server!.origin}${PREFIX}?channels=a,b`, { 'last-event-id': afterFirst });
    await resumed.waitFor((events) => messageEvents(events).length === 2, 'what came after the first message');
    const seen = resumed.messages().map((message) => `${message.channel}:${String(message.data)}`);
    expect(seen.sort()).toEqual(['a:2', 'b:1']);
    resumed.close();
  });

  it("with firstMessage 'newest', a cursorless poll and stream get only what comes next", async () => {
    await start({ firstMessage: 'newest' });
    await broker.publish('room', 'old');
    await broker.publish('other', 'old');
    const poll = send(server!.url('room', 'wait=5'));
    const manyPoll = send(`${server!.origin}${PREFIX}?channels=room,other&wait=5`);
    const stream = await openStream(server!.url('room'));
    await stream.waitFor((events) => events.some((event) => event.id !== undefined), 'the starting id');
    await until(() => broker.stats().waiters === 3, 'the polls and the stream wait for the next message');
    expect((await send(server!.url('room', 'wait=0'))).text).toContain('"timedOut":true');
    await broker.publish('room', 'new');
    expect(json<PollBody>(await poll).messages.map((message) => message.data)).toEqual(['new']);
    expect(json<PollBody>(await manyPoll).messages.map((message) => message.data)).toEqual(['new']);
    await stream.waitFor((events) => messageEvents(events).length === 1, 'the new message');
    expect(stream.messages().map((message) => message.data)).toEqual(['new']);
    // A cursor still reads from where it says.
    const all = json<PollBody>(await send(server!.url('room', `wait=0&cursor=${stream.events[1]!.id!}`)));
    expect(all.messages.map((message) => message.data)).toEqual(['new']);
    stream.close();
  });

  it('ends every stream when the broker closes', async () => {
    await start();
    const streams = await Promise.all([openStream(server!.url('a')), openStream(server!.url('b'))]);
    await until(() => broker.stats().waiters === 2, 'both streams wait');
    await broker.close();
    await Promise.all(streams.map((stream) => stream.done));
    expect(streams.every((stream) => stream.ended())).toBe(true);
    await until(() => limiter.stats().total === 0, 'the leases are released');
  });

  it('stops reading the broker for a client that does not read, and cuts it after sendTimeout', async () => {
    await start({ sendTimeout: 1_000 });
    const socket = connect(Number(new URL(server!.origin).port), '127.0.0.1');
    socket.pause(); // never reads
    socket.write(`GET ${PREFIX}/big HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n`);
    await until(() => broker.stats().waiters === 1, 'the stream waits');
    const payload = 'x'.repeat(64 * 1024);
    // Far more than the socket buffers hold (Linux lets a loopback receiver buffer up to 32 MiB).
    for (let i = 0; i < 600; i++) await broker.publish('big', payload);
    await until(() => broker.stats().waiters === 0, 'the stream holds no waiter while its client does not read');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    expect(await eventually(() => limiter.stats().total === 0, 5_000), 'the connection was cut after sendTimeout').toBe(true);
    socket.destroy();
    await closed;
  }, 10_000);
});
