// Streams that end by maxStream (tens of ms), are cut by the client, or get a pipelined request,
// all while publishes land every turn on a few channels, so that streams end while queued to
// poll again. Counts writes after a response ended, uncaught errors, and what is left held
// (waiters, leases) once every client is gone. Usage: node test/attack/stream-churn.mjs [clients] [seconds]
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { Broker, ConnectionLimiter } from '../../dist/index.js';
import { longPoll } from '../../dist/adapters/node.js';
import { watchWrites } from './common.mjs';

const CLIENTS = Number(process.argv[2] ?? 300);
const SECONDS = Number(process.argv[3] ?? 5);
const hard = setTimeout(() => { console.log('HARD TIMEOUT'); process.exit(2); }, (SECONDS + 30) * 1000);
const counts = watchWrites();
const broker = new Broker({ capacity: 50 });
const limiter = new ConnectionLimiter({ total: 100000, perClient: 100000, perChannel: 100000 });
const server = createServer(longPoll(broker, { prefix: '/c', limiter, heartbeat: 20, maxStream: 60, sendTimeout: 500 }));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const { port } = server.address();
const channels = ['a', 'b', 'c', 'd'];
let done = false;
let opened = 0;
let ends = 0;
const live = new Map();
const paths = ['/c/a', '/c/b', '/c?channels=a,b,c,d', '/c?channels=c,d&limit=1'];
async function client(i) {
  while (!done) {
    await new Promise((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' });
      opened++;
      const info = { kind: '', bytes: 0, text: '' };
      live.set(socket, info);
      socket.on('data', (d) => { info.bytes += d.length; if (info.text.length < 300) info.text += d; });
      socket.on('error', () => {});
      socket.on('close', () => { ends++; live.delete(socket); resolve(); });
      socket.write(`GET ${paths[i % paths.length]} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
      const r = Math.random();
      info.kind = r < 0.3 ? 'destroy' : r < 0.5 ? 'pipelined' : r < 0.6 ? 'noread' : 'maxStream';
      if (r < 0.3) setTimeout(() => socket.destroy(), Math.random() * 80);
      else if (r < 0.5) setTimeout(() => socket.write('GET /c/a?wait=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), Math.random() * 80);
      else if (r < 0.6) { socket.pause(); setTimeout(() => socket.destroy(), 700); } // reads nothing
      else setTimeout(() => socket.end(), 200); // maxStream ends it first
    });
  }
}
const runs = Array.from({ length: CLIENTS }, (_, i) => client(i));
let published = 0;
const until = Date.now() + SECONDS * 1000;
while (Date.now() < until) {
  await Promise.all(channels.map((channel) => broker.publish(channel, { n: published })));
  published++;
  await new Promise((r) => (process.env.HOG || published % 2 ? setImmediate(r) : setTimeout(r, 1)));
}
done = true;
await Promise.race([Promise.all(runs), new Promise((r) => setTimeout(r, 5000))]);
const wait = Date.now() + 3000;
while ((broker.stats().waiters > 0 || limiter.stats().total > 0) && Date.now() < wait) await new Promise((r) => setTimeout(r, 20));
const stuck = [...live.values()];
console.log('still open', stuck.length, JSON.stringify(stuck.reduce((a, s) => ({ ...a, [s.kind]: (a[s.kind] ?? 0) + 1 }), {})), JSON.stringify(stuck.slice(0, 2).map((s) => s.text.slice(0, 200))));
console.log(JSON.stringify({ CLIENTS, SECONDS, published: published * channels.length, opened, ends, afterEnd: counts.afterEnd, uncaught: counts.uncaught, waiters: broker.stats().waiters, leases: limiter.stats().total, heapMB: Math.round(process.memoryUsage().heapUsed / 1048576) }));
await broker.close();
server.closeAllConnections();
server.close();
clearTimeout(hard);
setTimeout(() => process.exit(0), 100);
