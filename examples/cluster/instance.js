// One longpoll-kit instance on a shared Redis: what you run N times behind a load balancer.
//
//   REDIS_URL=redis://127.0.0.1:6379 PORT=3001 node examples/cluster/instance.js
//
// Every instance serves GET /channels/:name (held polls) and POST /channels/:name (publish)
// from the same history, so a client may land on any instance at every poll.
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { Broker } from 'longpoll-kit';
import { longPoll } from 'longpoll-kit/node';
import { RedisEngine } from 'longpoll-kit/redis';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  // Fail a publish at once while Redis is down (HTTP 503) instead of queueing it.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  // Reconnect quickly after an outage: at most half a second between attempts.
  retryStrategy: (attempt) => Math.min(attempt * 50, 500),
});
let down = false;
redis.on('error', (error) => {
  if (!down) console.error(`redis: ${error.message}`);
  down = true;
});
redis.on('ready', () => (down = false));

const broker = new Broker({ engine: new RedisEngine({ redis, prefix: process.env.PREFIX ?? 'lp:', capacity: 1000, maxAge: 300_000 }) });
const server = createServer(longPoll(broker, { prefix: '/channels', publish: true }));

// Commands fail fast while the client connects (no offline queue): start serving once it is
// ready, or after 5 s anyway, so an instance booting during an outage answers 503, not nothing.
await new Promise((resolve) => {
  const timer = setTimeout(resolve, 5_000);
  redis.once('ready', () => resolve(clearTimeout(timer)));
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`${process.env.NAME ?? 'instance'} on http://127.0.0.1:${port}/channels/`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    // Stop accepting, answer held polls with 503 shutting_down, and let go of Redis once the
    // broker is closed. Whatever still holds a connection a second later is a slow client (a
    // body trickling in, an answer it does not read), which server.close() would wait for.
    server.close();
    void broker.close().finally(() => redis.disconnect());
    setTimeout(() => server.closeAllConnections(), 1000).unref();
  });
}
