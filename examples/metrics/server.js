// Long polling with Prometheus metrics: `GET /metrics` next to the long-poll routes.
//
//   curl 'http://127.0.0.1:3000/channels/demo'                                 held until a message
//   curl -X POST -H 'content-type: application/json' -d '{"text":"hi"}' 'http://127.0.0.1:3000/channels/demo'
//   curl 'http://127.0.0.1:3000/metrics'
//
// PORT sets the port (PORT=0: a free one).
import { createServer } from 'node:http';
import { Broker, ConnectionLimiter } from 'longpoll-kit';
import { longPoll } from 'longpoll-kit/node';
import { longPollMetrics } from './metrics.js';

const broker = new Broker();
const limiter = new ConnectionLimiter({ perClient: 6 });
const registry = longPollMetrics(broker, limiter);

// `publish: true` lets anyone POST to any channel: fine for a demo. In an application,
// publish from your own routes, or decide who may in `authorize`.
const channels = longPoll(broker, { prefix: '/channels', limiter, publish: true });

async function scrape(res) {
  try {
    const text = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' }).end(text);
  } catch (error) {
    console.error('metrics: scrape failed', error);
    res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
  }
}

const server = createServer((req, res) => {
  const { pathname } = new URL(req.url ?? '/', 'http://localhost');
  if (pathname === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
    void scrape(res);
    return;
  }
  // With a `next`, requests outside /channels fall through to it.
  channels(req, res, () => {
    const problem = { type: 'about:blank', title: 'Not Found', status: 404, detail: 'Try /channels/<name> or /metrics' };
    res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify(problem));
  });
});

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`longpoll-kit with metrics at http://127.0.0.1:${port}/metrics`);
  console.log(`  channels under http://127.0.0.1:${port}/channels/<name>`);
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
