// The smallest long-polling server: the core Broker and ConnectionLimiter wired by hand to
// node:http, without an adapter, to show what an adapter does (`npm start` runs examples/chat).
//
//   GET  /channels/:name?cursor=…   holds until a message arrives (25 s at most)
//   POST /channels/:name            publishes the JSON body
import { createServer } from 'node:http';
import { Broker, ConnectionLimiter, LongPollError } from 'longpoll-kit';

const broker = new Broker({ capacity: 100, maxAge: 60_000 });
const limiter = new ConnectionLimiter({ perClient: 6 });

async function handle(req, res) {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const match = /^\/channels\/([\w.:-]{1,200})$/.exec(url.pathname);
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  if (!match) return send(404, { error: 'GET or POST /channels/<name>' });
  const channel = match[1];
  try {
    if (req.method === 'POST') {
      let body = '';
      for await (const chunk of req) body += chunk;
      return send(201, await broker.publish(channel, JSON.parse(body)));
    }
    const lease = limiter.acquire({ client: req.socket.remoteAddress, channel });
    const gone = new AbortController();
    res.on('close', () => gone.abort());
    try {
      const cursor = url.searchParams.get('cursor') || undefined;
      send(200, await broker.poll(channel, { cursor, signal: gone.signal }));
    } finally {
      lease.release();
    }
  } catch (error) {
    if (res.writableEnded || res.destroyed) return;
    const failure = error instanceof SyntaxError ? new LongPollError('invalid_body', 'The body is not JSON') : LongPollError.from(error);
    send(failure.status, { code: failure.code, detail: failure.message, earliestCursor: failure.earliestCursor });
  }
}

const server = createServer((req, res) => void handle(req, res));

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`longpoll-kit quickstart on http://127.0.0.1:${port}/channels/demo`);
  console.log(`  poll:    curl 'http://127.0.0.1:${port}/channels/demo'`);
  console.log(`  publish: curl -X POST -d '{"text":"hi"}' 'http://127.0.0.1:${port}/channels/demo'`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    void broker.close().then(() => server.close());
  });
}
