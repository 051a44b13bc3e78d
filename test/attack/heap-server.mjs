// The server side of heap-streams.mjs: a node adapter, commanded over IPC, reporting its memory.
import { createServer } from 'node:http';
import { Broker, ConnectionLimiter, MemoryEngine } from '../../dist/index.js';
import { longPoll } from '../../dist/adapters/node.js';

const maxBytes = Number(process.env.MAX_BYTES ?? 64 * 1024 * 1024);
const broker = new Broker({ engine: new MemoryEngine({ maxBytes }) });
const limiter = new ConnectionLimiter({ total: 100_000, perClient: 100_000, perChannel: 100_000 });
const server = createServer(longPoll(broker, { prefix: '/c', limiter, heartbeat: 5000, sendTimeout: Number(process.env.SEND_TIMEOUT ?? 30000) }));
server.maxConnections = 50_000;
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
const memory = () => {
  globalThis.gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, ab: m.arrayBuffers, rss: m.rss, streams: limiter.stats().total, waiters: broker.stats().waiters };
};
process.on('message', (command) => void handle(command));
async function handle(command) {
  if (command.type === 'memory') process.send({ memory: memory() });
  if (command.type === 'publish') {
    const data = 'x'.repeat(command.size);
    for (let i = 0; i < command.count; i++) await broker.publish(command.channels[i % command.channels.length], data);
    process.send({ published: true });
  }
  if (command.type === 'close') {
    const started = Date.now();
    await broker.close();
    server.close(() => process.send({ closed: Date.now() - started }));
    setTimeout(() => process.send({ stillOpen: true, streams: limiter.stats().total, handles: process.getActiveResourcesInfo().length }), Number(process.env.CLOSE_WAIT ?? 3000)).unref();
  }
}
