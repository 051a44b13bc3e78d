// A Fastify application with longpoll-kit as a plugin, shaped for production: capped held polls
// and request rate per client, small publish bodies, and a shutdown that answers held polls and
// exits within seconds even with slow clients connected.
//
//   curl 'http://127.0.0.1:3000/channels/demo'                                 held until a message
//   curl -X POST -H 'content-type: application/json' -d '{"text":"hi"}' 'http://127.0.0.1:3000/channels/demo'
//
// PORT sets the port (PORT=0: a free one).
import Fastify from 'fastify';
import { Broker, ConnectionLimiter } from 'longpoll-kit';
import { fastifyLongPoll } from 'longpoll-kit/fastify';

const broker = new Broker();
// Six held polls per client address, and 120 requests a minute each: a client in a hot loop
// gets 429 with Retry-After instead of the server's time.
const limiter = new ConnectionLimiter({ perClient: 6, rate: { requests: 120, per: 60_000 } });

const app = Fastify({
  // Fastify's connectionTimeout is the socket's idle timeout: 0 (none, the default) lets a poll
  // be held for maxWait. Set below maxWait, the plugin would clamp waits under it and warn.
  connectionTimeout: 0,
  // Only the arrival of the request is bounded: a slow sender is cut, a held poll is not.
  requestTimeout: 15_000,
  // For the application's own routes; the plugin's routes use maxBodyBytes below.
  bodyLimit: 64 * 1024,
});

// `publish: true` lets anyone POST to any channel: fine for a demo. In an application, publish
// from your own routes, or decide who may in `authorize`.
await app.register(fastifyLongPoll, { broker, prefix: '/channels', limiter, publish: true, maxBodyBytes: 4096, maxWait: 30_000 });
app.get('/health', async () => ({ ok: true, ...broker.stats() }));

// Held polls are answered 503 shutting_down before Fastify waits for in-flight requests:
// in onClose, which runs after them, app.close() would wait out every held poll.
app.addHook('preClose', async () => {
  await broker.close();
});

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' });
console.log(`longpoll-kit on Fastify at ${address}/channels/demo`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    // Fastify closes idle keep-alive connections itself; a client still sending its request, or
    // not reading its answer, would hold close() open: drop whatever is left after a second.
    setTimeout(() => app.server.closeAllConnections(), 1000).unref();
    void app.close();
  });
}
