/**
 * A channel's held polls live in an array (`WaiterList`, src/waiter.ts), a poll taken off by
 * moving the last one into its place. On real sockets: clients that go away in the middle of a
 * fanout's list, during the engine read of a publish's drain, pipelined polls expired on the same
 * channel, and event streams that re-poll while others close. Each poll is answered exactly once,
 * and `stats().waiters` comes back to what is really held.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, type Engine } from '../../src/index.js';
import { gatedEngine } from '../support/engines.js';
import { ADAPTERS, PREFIX, startServer, type AdapterName, type TestServer } from '../support/servers.js';
import { rawConnection, type RawConnection } from '../support/slow-clients.js';
import { openStream, type OpenStream } from './events.js';
import { hold, until, type HeldRequest, type PollBody } from './requests.js';

let broker: Broker<unknown> | undefined;
let server: TestServer | undefined;
const cleanups: (() => void)[] = [];

async function start(adapter: AdapterName, engine?: Engine): Promise<TestServer> {
  broker = new Broker<unknown>(engine ? { engine } : {});
  server = await startServer(adapter, broker);
  return server;
}

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  await server?.close();
  server = undefined;
  await broker?.close();
  broker = undefined;
});

function holdAll(n: number): HeldRequest[] {
  const held = Array.from({ length: n }, () => hold(server!.url('room', 'wait=10'), { timeout: 8_000 }));
  for (const request of held) cleanups.push(() => request.destroy());
  return held;
}

describe.each(ADAPTERS)('held polls of one channel, %s adapter', (adapter) => {
  it('answers once every poll left after clients at the front, the back, the middle and a moved place went away', async () => {
    await start(adapter);
    const held = holdAll(12);
    await until(() => broker!.stats().waiters === 12, '12 polls are held');
    // The first (the last moves into its place), that moved one, then two in the middle.
    const gone = [0, 11, 5, 6];
    for (const i of gone) held[i]!.destroy();
    await until(() => broker!.stats().waiters === 8, 'the polls of the clients gone are let go');
    const deliveries: number[] = [];
    broker!.on('deliver', ({ polls }) => deliveries.push(polls));
    await broker!.publish('room', 'x');
    for (const [i, request] of held.entries()) {
      const answer = await request.answer;
      if (gone.includes(i)) {
        expect(answer, `poll ${i}`).toBeUndefined();
        continue;
      }
      expect(answer?.status, `poll ${i}`).toBe(200);
      const body = JSON.parse(answer!.text) as PollBody;
      expect(body.messages.map((m) => m.data)).toEqual(['x']);
      expect(body.timedOut).toBe(false);
    }
    expect(deliveries).toEqual([8]);
    await until(() => broker!.stats().waiters === 0, 'no poll is held');
  });

  it('answers pipelined polls expired on the same channel as others are held, each once', async () => {
    const s = await start(adapter);
    const others = holdAll(4);
    const get = `GET ${PREFIX}/room?wait=10 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
    const connection: RawConnection = await rawConnection(new URL(s.origin), get.repeat(3));
    cleanups.push(() => connection.socket.destroy());
    // Node's http server holds one poll per connection (each pipelined one answers the one
    // before as a timeout); a fetch runtime holds them all.
    const pipelinedHeld = adapter === 'fetch' ? 3 : 1;
    await until(() => broker!.stats().waiters === 4 + pipelinedHeld, 'the polls are held');
    await broker!.publish('room', 'x');
    for (const request of others) {
      const answer = await request.answer;
      expect(answer?.status).toBe(200);
      expect((JSON.parse(answer!.text) as PollBody).messages.map((m) => m.data)).toEqual(['x']);
    }
    await until(() => (connection.received().match(/HTTP\/1\.1 \d{3}/g) ?? []).length === 3, 'three answers on the connection');
    const text = connection.received();
    expect((text.match(/"timedOut":true/g) ?? []).length).toBe(3 - pipelinedHeld);
    expect((text.match(/"data":"x"/g) ?? []).length).toBe(pipelinedHeld);
    await until(() => broker!.stats().waiters === 0, 'no poll is held');
  });
});

describe.each(['node', 'fetch'] as const)('a publish whose drain waits for the engine, %s adapter', (adapter) => {
  it('lets go of the clients gone during the read, answers the others once, and counts only them delivered', async () => {
    const engine = gatedEngine();
    await start(adapter, engine);
    const held = holdAll(6);
    await until(() => broker!.stats().waiters === 6, '6 polls are held');
    const deliveries: number[] = [];
    broker!.on('deliver', ({ polls }) => deliveries.push(polls));
    const gate = engine.block();
    const published = broker!.publish('room', 'x');
    await gate.started;
    const gone = [1, 2, 4];
    for (const i of gone) held[i]!.destroy();
    await until(() => broker!.stats().waiters === 3, 'the polls of the clients gone are let go during the read');
    gate.open();
    await published;
    for (const [i, request] of held.entries()) {
      const answer = await request.answer;
      if (gone.includes(i)) expect(answer, `poll ${i}`).toBeUndefined();
      else expect((JSON.parse(answer!.text) as PollBody).messages.map((m) => m.data), `poll ${i}`).toEqual(['x']);
    }
    expect(deliveries).toEqual([3]);
    expect(broker!.stats().waiters).toBe(0);
  });
});

describe.each(['node', 'express', 'fastify', 'fetch'] as const)('event streams of one channel, %s adapter', (adapter) => {
  it('sends every message once and in order to each stream left while others close, and lets go of every waiter', async () => {
    const s = await start(adapter);
    const streams: OpenStream[] = [];
    for (let i = 0; i < 10; i++) {
      const stream = await openStream(s.url('room'), {}, 10_000);
      cleanups.push(() => stream.close());
      streams.push(stream);
    }
    await until(() => broker!.stats().waiters === 10, 'every stream holds a poll');
    const gone = [0, 9, 4, 5];
    for (const i of gone) streams[i]!.close();
    await until(() => broker!.stats().waiters === 6, 'the streams closed let go of their polls');
    for (let k = 0; k < 5; k++) {
      await broker!.publish('room', k);
      // Half the time the next publish comes before the streams re-poll (they read from their cursor).
      if (k % 2 === 0) await until(() => broker!.stats().waiters === 6, `the streams poll again after message ${k}`);
    }
    for (const [i, stream] of streams.entries()) {
      if (gone.includes(i)) continue;
      await stream.waitFor((events) => events.filter((event) => event.event === 'message').length >= 5, `stream ${i} gets 5 messages`);
      expect(stream.messages().map((m) => m.data), `stream ${i}`).toEqual([0, 1, 2, 3, 4]);
    }
    for (const i of gone) expect(streams[i]!.messages().length, `closed stream ${i}`).toBe(0);
    await until(() => broker!.stats().waiters === 6, 'each stream holds one poll again');
    for (const stream of streams) stream.close();
    await until(() => broker!.stats().waiters === 0, 'no poll is held');
  });
});
