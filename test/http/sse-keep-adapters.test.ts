/**
 * Red team, session 9: kept event-stream polls (7e8601f) on real sockets, every adapter. A client
 * that stops reading in the middle of a burst of publishes, then reads again; a stream whose
 * last message comes just before `maxStream` on a quiet channel; a request pipelined behind a
 * kept stream. Everything on 127.0.0.1, bounded in count and time.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter } from '../../src/index.js';
import { ADAPTERS, PREFIX, startServer, type AnyOptions, type TestServer } from '../support/servers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, within: number): Promise<boolean> {
  const deadline = performance.now() + within;
  while (!check()) {
    if (performance.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

interface Raw {
  readonly socket: Socket;
  readonly text: () => string;
  readonly closed: () => boolean;
}

async function raw(server: TestServer, request: string): Promise<Raw> {
  const socket = connect(Number(new URL(server.origin).port), '127.0.0.1');
  socket.on('error', () => {});
  let text = '';
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(request);
  return { socket, text: () => text, closed: () => closed };
}

const streamRequest = (channel: string) => `GET ${PREFIX}/${channel} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`;

/** The `data` of each message event in `text`, a chunked or plain body alike (each is one line). */
function dataOf(text: string): unknown[] {
  return [...text.matchAll(/^data: (\{.*\})\r?$/gm)].map((match) => (JSON.parse(match[1]!) as { data: unknown }).data);
}

describe.each(ADAPTERS)('kept event streams, %s adapter', (adapter) => {
  let broker: Broker<unknown>;
  let limiter: ConnectionLimiter;
  let server: TestServer | undefined;
  const sockets: Socket[] = [];

  async function start(options: AnyOptions): Promise<TestServer> {
    broker = new Broker<unknown>();
    limiter = new ConnectionLimiter({ perClient: 100 });
    server = await startServer(adapter, broker, { limiter, ...options });
    return server;
  }

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await server?.close();
    server = undefined;
    await broker.close();
  });

  it('gives a client that stops reading during a burst every message once and in order once it reads again', async () => {
    const server = await start({ sendTimeout: 5_000, heartbeat: 5_000 });
    const connection = await raw(server, streamRequest('burst'));
    sockets.push(connection.socket);
    expect(await until(() => broker.stats().waiters === 1, 2_000)).toBe(true);
    const payload = 'y'.repeat(8 * 1024);
    let published = 0;
    for (let i = 0; i < 10; i++) await broker.publish('burst', { i: published++, payload });
    connection.socket.pause();
    // 3 MiB in bursts of synchronous publishes: more than the socket buffers take.
    for (let round = 0; round < 8; round++) {
      await Promise.all(Array.from({ length: 48 }, () => broker.publish('burst', { i: published++, payload })));
      await sleep(5);
    }
    connection.socket.resume();
    for (let i = 0; i < 10; i++) await broker.publish('burst', { i: published++, payload });
    const got = () => dataOf(connection.text()).map((data) => (data as { i: number }).i);
    expect(await until(() => got().length >= published, 8_000), `got ${got().length} of ${published}`).toBe(true);
    await sleep(20);
    expect(got()).toEqual(Array.from({ length: published }, (_, i) => i));
    expect(await until(() => broker.stats().waiters === 1, 2_000)).toBe(true);
  }, 20_000);

  it('ends at maxStream after a message just before the end on a quiet channel, and gives the lease back', async () => {
    const server = await start({ heartbeat: 500, maxStream: 600 });
    const started = Date.now();
    const connection = await raw(server, streamRequest('late'));
    sockets.push(connection.socket);
    expect(await until(() => broker.stats().waiters === 1, 2_000)).toBe(true);
    await sleep(300 - (Date.now() - started));
    await broker.publish('late', 'late');
    // The end of a chunked body, or the connection closed.
    const ended = () => connection.text().includes('\r\n0\r\n\r\n') || connection.closed();
    expect(await until(ended, 2_000)).toBe(true);
    const took = Date.now() - started;
    expect(took, `ended after ${took} ms`).toBeLessThan(750);
    expect(dataOf(connection.text())).toEqual(['late']);
    // Less than a heartbeat without a message: no ping (the last poll's timeout, a millisecond
    // early by Date.now(), wrote one instead of ending).
    expect(connection.text()).not.toContain(': ping');
    expect(await until(() => broker.stats().waiters === 0 && limiter.stats().channels === 0, 2_000)).toBe(true);
  }, 10_000);

  // A fetch runtime does not tell a handler about the connection: requests pipelined behind a
  // stream wait for it there (hostile-sse.test.ts).
  it.skipIf(adapter === 'fetch')('ends a kept stream when a request is pipelined behind it, and answers that request', async () => {
    const server = await start({ heartbeat: 5_000 });
    const connection = await raw(server, streamRequest('piped'));
    sockets.push(connection.socket);
    expect(await until(() => broker.stats().waiters === 1, 2_000)).toBe(true);
    for (let i = 0; i < 3; i++) await broker.publish('piped', i);
    expect(await until(() => dataOf(connection.text()).length === 3, 2_000)).toBe(true);
    expect(broker.stats().waiters).toBe(1);
    connection.socket.write(`GET ${PREFIX}/piped?wait=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    // The stream's body ends, then the poll's answer follows on the same connection.
    expect(await until(() => /HTTP\/1\.1 200[\s\S]*HTTP\/1\.1 200/.test(connection.text()) || connection.closed(), 3_000), connection.text().slice(-300)).toBe(true);
    expect(dataOf(connection.text())).toEqual([0, 1, 2]);
    await broker.publish('piped', 3);
    await sleep(20);
    expect(dataOf(connection.text())).toEqual([0, 1, 2]);
    expect(await until(() => broker.stats().waiters === 0, 2_000)).toBe(true);
  }, 10_000);
});
