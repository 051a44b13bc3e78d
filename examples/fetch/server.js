// The minimal mount of the fetch adapter, served on Node through a small bridge
// (node-bridge.js). On Deno it would be `Deno.serve(handler)`; on Bun `Bun.serve({ fetch: handler })`.
//
//   curl 'http://127.0.0.1:3000/channels/demo'                                 held until a message
//   curl -X POST -H 'content-type: application/json' -d '{"text":"hi"}' 'http://127.0.0.1:3000/channels/demo'
//
// PORT sets the port (PORT=0: a free one).
import { Broker, ConnectionLimiter } from 'longpoll-kit';
import { longPoll } from 'longpoll-kit/fetch';
import { serve } from './node-bridge.js';

const broker = new Broker();

// `publish: true` lets anyone POST to any channel: fine for a demo. In an application,
// publish from your own routes, or decide who may in `authorize`.
const handler = longPoll(broker, { prefix: '/channels', limiter: new ConnectionLimiter(), publish: true });
const server = serve(handler);

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`longpoll-kit on a fetch handler at http://127.0.0.1:${port}/channels/demo`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    // Stop accepting, and answer held polls with 503 shutting_down. Whatever still holds a
    // connection a second later is a slow client (a body trickling in, an answer it does not
    // read), which server.close() would wait for: drop it.
    server.close();
    void broker.close();
    setTimeout(() => server.closeAllConnections(), 1000).unref();
  });
}
