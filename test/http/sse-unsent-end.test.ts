/**
 * An event stream that ends (`broker.close()`, `maxStream`, a pipelined request) while its client
 * reads nothing: the end is written behind bytes the socket cannot take, so `finish` never comes.
 * The connection must still go after `sendTimeout`, and its lease with it.
 */
import { createServer, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { longPoll } from '../../src/adapters/node.js';
import { Broker, ConnectionLimiter } from '../../src/index.js';
import { eventually } from './requests.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

it('destroys the connection of a stream ended with unsent bytes after sendTimeout, releasing its lease', async () => {
  const broker = new Broker<string>();
  const limiter = new ConnectionLimiter();
  const handler = longPoll(broker, { prefix: '/c', limiter, sendTimeout: 500, heartbeat: 60_000 });
  let response: ServerResponse | undefined;
  const server = createServer((req, res) => {
    response = res;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    server.closeAllConnections();
    server.close();
  });
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  cleanups.push(() => socket.destroy());
  socket.on('error', () => {});
  socket.write('GET /c/room HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
  socket.pause(); // the client reads nothing from now on
  expect(await eventually(() => broker.stats().waiters === 1, 2000)).toBe(true);
  // Small messages until one waits in the process while the stream still holds its poll: the
  // kernel's buffers are full, yet the write was under the high-water mark.
  const data = 'x'.repeat(2000);
  let published = 0;
  while (!(response!.writableLength > 0 && broker.stats().waiters === 1) && published < 50_000) {
    await broker.publish('room', data);
    published++;
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(response!.writableLength).toBeGreaterThan(0);
  expect(broker.stats().waiters).toBe(1);
  expect(limiter.stats().total).toBe(1);
  await broker.close(); // ends the stream: its end is queued behind the unsent bytes
  // sendTimeout is 500 ms: the connection goes well within 3 s.
  // (The client, reading nothing, would not see the server's side close: watch the server's.)
  const gone = () => (response!.socket === null || response!.socket.destroyed) && limiter.stats().total === 0;
  expect(await eventually(gone, 3000)).toBe(true);
});
