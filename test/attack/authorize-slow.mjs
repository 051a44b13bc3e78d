// authorize slow for one channel of a many-channel stream: what is held while it runs, and a
// client that leaves before it answers.
import { createServer } from 'node:http';
import { Broker, ConnectionLimiter } from '../../dist/index.js';
import { longPoll } from '../../dist/adapters/node.js';

const broker = new Broker();
const limiter = new ConnectionLimiter({ perClient: 10_000, total: 10_000 });
let calls = 0;
const authorize = async (_req, { channel }) => { calls++; if (channel === 'slow') await new Promise((r) => setTimeout(r, 1500)); return true; };
const server = createServer(longPoll(broker, { prefix: '/c', limiter, authorize, authorizeTimeout: 1000 })).listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const { port } = server.address();
const list = ['slow', ...Array.from({ length: 31 }, (_, i) => `c${i}`)].join(',');
const N = 300;
const controllers = [];
const started = Date.now();
const answers = Array.from({ length: N }, () => {
  const c = new AbortController();
  controllers.push(c);
  return fetch(`http://127.0.0.1:${port}/c?channels=${list}`, { headers: { accept: 'text/event-stream' }, signal: c.signal }).then((r) => r.status, () => 'aborted');
});
await new Promise((r) => setTimeout(r, 300));
console.log(`${N} many-channel streams waiting on authorize: authorize calls ${calls}, leases ${limiter.stats().total}, waiters ${broker.stats().waiters}`);
for (const c of controllers.slice(0, N / 2)) c.abort(); // half leave before authorize answers
const statuses = {};
for (const s of await Promise.all(answers)) statuses[s] = (statuses[s] ?? 0) + 1;
console.log(`answers ${JSON.stringify(statuses)} after ${Date.now() - started} ms (authorizeTimeout 1000)`);
await new Promise((r) => setTimeout(r, 1000));
console.log(`after the slow authorize settled: leases ${limiter.stats().total}, waiters ${broker.stats().waiters}`);
await broker.close();
server.closeAllConnections();
server.close();
