// The minimal mount on Node's own http server.
//
//   curl 'http://127.0.0.1:3000/channels/demo'                                 held until a message
//   curl -X POST -H 'content-type: application/json' -d '{"text":"hi"}' 'http://127.0.0.1:3000/channels/demo'
//
// PORT sets the port (PORT=0: a free one).
import { createServer } from 'node:http';
import { Broker, ConnectionLimiter } from 'longpoll-kit';
import { longPoll } from 'longpoll-kit/node';

const broker = new Broker();

// `publish: true` lets anyone POST to any channel: fine for a demo. In an application,
// publish from your own routes, or decide who may in `authorize`.
const server = createServer(longPoll(broker, { prefix: '/channels', limiter: new ConnectionLimiter(), publish: true }));

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`longpoll-kit on node:http at http://127.0.0.1:${port}/channels/demo`);
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
