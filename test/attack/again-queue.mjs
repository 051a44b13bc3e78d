// Streams queued to poll again (after writing a publish's events) when, in the same turn, their
// sockets are destroyed on the server, the broker closes, or more is published. Counts writes
// after a response ended, uncaught errors, held polls and leases left, and streams left open.
// Usage: node test/attack/again-queue.mjs [streams] [destroy|close|both]
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { Broker, ConnectionLimiter } from '../../dist/index.js';
import { longPoll } from '../../dist/adapters/node.js';
import { watchWrites } from './common.mjs';

const N = Number(process.argv[2] ?? 2000);
const mode = process.argv[3] ?? 'both';
const hard = setTimeout(() => { console.log('HARD TIMEOUT'); process.exit(2); }, 60_000);
const counts = watchWrites();
const broker = new Broker({ capacity: 1000 });
const limiter = new ConnectionLimiter({ total: 100000, perClient: 100000, perChannel: 100000 });
const responses = [];
const handler = longPoll(broker, { prefix: '/c', limiter, heartbeat: 60_000 });
const server = createServer((req, res) => { responses.push(res); handler(req, res); });
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const { port } = server.address();
const clients = [];
for (let i = 0; i < N; i++) {
  const socket = connect({ port, host: '127.0.0.1' });
  const client = { socket, bytes: 0, text: '', ended: false };
  socket.on('data', (d) => { client.bytes += d.length; client.text += d; });
  socket.on('connect', () => { client.port = socket.localPort; });
  socket.on('close', () => { client.ended = true; });
  socket.on('error', () => {});
  const path = i % 2 ? '/c/room' : '/c?channels=room,other';
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
  clients.push(client);
  if (i % 500 === 499) await new Promise((r) => setTimeout(r, 20));
}
const until = async (check, ms) => { const end = Date.now() + ms; while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 10)); return check(); };
await until(() => broker.stats().waiters === N, 10_000);
console.log('held', broker.stats().waiters, 'leases', limiter.stats().total);
const heapBefore = process.memoryUsage().heapUsed;
await broker.publish('room', { n: 1 }); // every stream writes and queues its next poll
const queuedHeap = process.memoryUsage().heapUsed;
void broker.publish('room', { n: 2 }); // lands before the queued polls: they find it at once
const destroyedPorts = new Set();
if (mode === 'destroy' || mode === 'both') for (const res of responses.slice(0, N / 2)) { destroyedPorts.add(res.socket.remotePort); res.socket?.destroy(); }
if (mode === 'close' || mode === 'both') void broker.close();
await new Promise((r) => setImmediate(r));
await new Promise((r) => setTimeout(r, 200));
const doomed = mode === 'destroy' ? clients.filter((c) => destroyedPorts.has(c.port)) : clients;
const survivors = clients.filter((c) => !doomed.includes(c));
const left = async () => doomed.filter((c) => !c.ended).length;
await until(() => doomed.every((c) => c.ended) && broker.stats().waiters === (mode === 'destroy' ? N / 2 : 0) && survivors.every((c) => c.text.includes('"n":2')), 10_000);
console.log(JSON.stringify({
  mode, N, afterEnd: counts.afterEnd, uncaught: counts.uncaught, waiters: broker.stats().waiters, expectedWaiters: mode === 'destroy' ? N / 2 : 0,
  leases: limiter.stats?.() ?? null, openThatShouldEnd: await left(),
  queueHeapKiB: Math.round((queuedHeap - heapBefore) / 1024),
  survivorsMissingN2: survivors.filter((c) => !c.text.includes('"n":2')).length, survivors: survivors.length,
}));
for (const c of clients) c.socket.destroy();
await broker.close();
server.closeAllConnections();
server.close();
clearTimeout(hard);
setTimeout(() => process.exit(0), 100);
