// A client that reads one byte per second from a busy stream, and slowloris-style stream opens
// (the request's headers one byte at a time): what the server holds and when it lets go.
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { Broker, ConnectionLimiter } from '../../dist/index.js';
import { longPoll } from '../../dist/adapters/node.js';

const broker = new Broker();
const limiter = new ConnectionLimiter();
const server = createServer(longPoll(broker, { prefix: '/c', limiter, sendTimeout: 2000, heartbeat: 1000 })).listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const { port } = server.address();
// 1. one byte per second
const slow = connect(port, '127.0.0.1');
slow.write('GET /c/room HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
slow.pause();
let read = 0;
const drip = setInterval(() => { const b = slow.read(1); if (b) read += b.length; }, 1000);
slow.on('error', () => {});
const publisher = setInterval(() => void broker.publish('room', 'y'.repeat(20000)), 20);
const started = Date.now();
let cutAt;
while (Date.now() - started < 12000) {
  await new Promise((r) => setTimeout(r, 250));
  if (cutAt === undefined && limiter.stats().total === 0) cutAt = Date.now() - started;
}
clearInterval(publisher);
clearInterval(drip);
console.log(`1 B/s reader: lease released after ${cutAt ?? 'never (12 s)'} ms (sendTimeout 2000), bytes read ${read}, waiters ${broker.stats().waiters}`);
slow.destroy();
// 2. slowloris opens: 200 sockets sending the request one byte every 100 ms
const request = 'GET /c/room HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n';
const sockets = [];
for (let i = 0; i < 200; i++) { const s = connect(port, '127.0.0.1'); s.on('error', () => {}); sockets.push(s); }
let maxLeases = 0;
for (let i = 0; i < request.length - 2; i++) {
  for (const s of sockets) s.write(request[i]);
  maxLeases = Math.max(maxLeases, limiter.stats().total);
  await new Promise((r) => setTimeout(r, 20));
}
console.log(`slowloris: 200 sockets mid-headers: leases held ${maxLeases}, waiters ${broker.stats().waiters}`);
for (const s of sockets) s.write('\r\n');
await new Promise((r) => setTimeout(r, 300));
console.log(`after the last CRLF: leases ${limiter.stats().total} (the limiter's perClient cap counts them), waiters ${broker.stats().waiters}`);
for (const s of sockets) s.destroy();
await new Promise((r) => setTimeout(r, 200));
console.log(`after they leave: leases ${limiter.stats().total}, waiters ${broker.stats().waiters}`);
await broker.close();
server.closeAllConnections();
server.close();
