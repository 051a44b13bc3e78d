/**
 * Red-team tests of parked many-channel polls over HTTP (commit 3a0edbf): a re-poll and a
 * many-channel event stream take their parked poll over through `Broker[selectMany]`, and a
 * request expired while `authorize` runs (a request pipelined behind it) must not take one over.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Broker } from '../../src/index.js';
import { ADAPTERS, PREFIX, startServer, type AnyOptions, type TestServer } from '../support/servers.js';
import { rawConnection, type RawConnection } from '../support/slow-clients.js';
import { openStream, type OpenStream } from './events.js';
import { json, send, until, type PollBody } from './requests.js';
import { CountingEngine } from '../support/engines.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seen = (body: PollBody) => body.messages.map((m) => `${m.channel}:${String(m.data)}`);

describe.each(ADAPTERS)('parked many-channel polls, %s adapter', (adapter) => {
  let broker: Broker<unknown> | undefined;
  let engine: CountingEngine;
  let server: TestServer | undefined;
  const cleanups: (() => void)[] = [];

  async function start(options: AnyOptions = {}): Promise<TestServer> {
    engine = new CountingEngine({ capacity: 1_000 });
    broker = new Broker<unknown>({ engine });
    server = await startServer(adapter, broker, options);
    return server;
  }

  const many = (query: string) => `${server!.origin}${PREFIX}?${query}`;

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) cleanup();
    await server?.close();
    server = undefined;
    await broker?.close();
    broker = undefined;
  });

  /** A held poll over a,b,c answered by a publish on a: its cursor. */
  async function answered(): Promise<string> {
    const first = json<PollBody>(await send(many('channels=a,b,c&wait=0')));
    const held = send(many(`channels=a,b,c&wait=5&cursor=${encodeURIComponent(first.cursor)}`));
    await until(() => broker!.stats().waiters === 1, 'the poll is held');
    await broker!.publish('a', 1);
    const body = json<PollBody>(await held);
    expect(seen(body)).toEqual(['a:1']);
    return body.cursor;
  }

  it('takes over the parked poll when the client polls again with its answer cursor: no read', async () => {
    // Mutant: `Broker[selectMany]` does not look for a parked poll (the HTTP layer and event
    // streams then never take one over).
    await start();
    const cursor = await answered();
    const reads = engine.reads;
    const again = send(many(`channels=a,b,c&wait=5&cursor=${encodeURIComponent(cursor)}`));
    await until(() => broker!.stats().waiters === 1, 'the re-poll is held');
    expect(engine.reads).toBe(reads);
    await broker!.publish('c', 2);
    expect(seen(json<PollBody>(await again))).toEqual(['c:2']);
  });

  it('streams many channels taking over each parked poll, and loses nothing published back to back', async () => {
    await start();
    const stream: OpenStream = await openStream(many('channels=a,b'));
    cleanups.push(() => stream.close());
    await until(() => broker!.stats().waiters === 1, 'the stream holds its poll');
    await broker!.publish('a', 1);
    const reads = engine.reads;
    await stream.waitFor(() => stream.messages().length === 1, 'the first event');
    // The stream polls again on the next turn, with the cursor of its answer: taken over.
    await until(() => broker!.stats().waiters === 1, 'the stream polls again');
    expect(engine.reads).toBe(reads);
    // Back to back, in one turn: the first answers the stream (parked), the next takes the
    // parked poll off, and the stream's next poll reads the rest.
    await Promise.all([broker!.publish('a', 2), broker!.publish('b', 3), broker!.publish('a', 4), broker!.publish('b', 5)]);
    await stream.waitFor(() => stream.messages().length >= 5, 'every event');
    await sleep(20);
    const messages = stream.messages().map((m) => `${m.channel}:${String(m.data)}`);
    expect(messages.filter((m) => m.startsWith('a:'))).toEqual(['a:1', 'a:2', 'a:4']);
    expect(messages.filter((m) => m.startsWith('b:'))).toEqual(['b:3', 'b:5']);
  });

  it.skipIf(adapter === 'fetch')('answers at once a re-poll expired by a request pipelined behind it while authorize ran', async () => {
    // Mutant: the take-over ignores `ticket.expired`: the expired request takes the parked poll
    // over and is held for its whole wait, and the request pipelined behind it waits as long.
    const s = await start({ authorize: async () => (await sleep(100), true) });
    const cursor = await answered();
    const get = `GET ${PREFIX}?channels=a,b,c&wait=5&cursor=${encodeURIComponent(cursor)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
    const connection: RawConnection = await rawConnection(new URL(s.origin), get.repeat(2));
    cleanups.push(() => connection.socket.destroy());
    const status = await Promise.race([connection.status, sleep(1_500).then(() => 'held' as const)]);
    expect(status).toBe(200);
    expect(connection.received()).toContain('"timedOut":true');
    // The one behind it takes the parked poll over and gets the next publish.
    await until(() => broker!.stats().waiters === 1, 'the pipelined poll is held');
    await broker!.publish('b', 2);
    await until(() => connection.received().includes('"data":2'), 'the pipelined poll is answered');
  });
});
