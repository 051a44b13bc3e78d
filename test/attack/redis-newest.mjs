// firstMessage 'newest' on RedisEngine: a cursorless hot loop over channels that do not exist.
// Counts the keys written under a unique prefix, the Redis commands per request and the time.
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { Broker } from '../../dist/index.js';
import { RedisEngine } from '../../dist/redis/index.js';
import { longPoll } from '../../dist/adapters/node.js';

const prefix = `attack-${process.pid}-${Date.now()}:`;
const redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: false });
const probe = new Redis({ host: '127.0.0.1', port: 6379 });
const engine = new RedisEngine({ redis, prefix });
const broker = new Broker({ engine });
const server = createServer(longPoll(broker, { prefix: '/c', firstMessage: 'newest' })).listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const { port } = server.address();
const keys = async () => (await probe.keys(`${prefix}*`)).length;
const stat = async () => Number(/total_commands_processed:(\d+)/.exec(await probe.info('stats'))[1]);
console.log('keys before', await keys());
const N = Number(process.argv[2] ?? 2000);
let c0 = await stat();
let t0 = Date.now();
const statuses = {};
for (let i = 0; i < N; i++) {
  const res = await fetch(`http://127.0.0.1:${port}/c/ghost-${i}?wait=0`);
  statuses[res.status] = (statuses[res.status] ?? 0) + 1;
  await res.arrayBuffer();
}
console.log(`${N} cursorless single-channel polls on unknown channels: ${Date.now() - t0} ms, statuses ${JSON.stringify(statuses)}, redis commands ${(await stat()) - c0 - 1}, keys now ${await keys()}`);
c0 = await stat();
t0 = Date.now();
const list = Array.from({ length: 32 }, (_, i) => `g${i}`).join(',');
for (let i = 0; i < N / 10; i++) {
  const res = await fetch(`http://127.0.0.1:${port}/c?channels=${list}&wait=0`);
  await res.arrayBuffer();
}
console.log(`${N / 10} cursorless 32-channel polls: ${Date.now() - t0} ms, redis commands ${(await stat()) - c0 - 1}, keys now ${await keys()}`);
// streams with newest
const controller = new AbortController();
const streams = [];
for (let i = 0; i < 200; i++) streams.push(fetch(`http://127.0.0.1:${port}/c/s-${i}`, { headers: { accept: 'text/event-stream' }, signal: controller.signal }).then((r) => r.body.getReader().read()).catch(() => {}));
await Promise.all(streams);
console.log('after 200 newest streams on unknown channels, keys', await keys(), (await probe.keys(`${prefix}*`)).slice(0, 5));
controller.abort();
await broker.close();
server.closeAllConnections();
server.close();
const all = await probe.keys(`${prefix}*`);
if (all.length) await probe.del(...all);
await redis.quit();
await probe.quit();
