// The smallest long-polling server: the core Broker and ConnectionLimiter wired by hand to
// node:http, without an adapter, to show what an adapter does (`npm start` runs examples/chat).
//
//   GET  /channels/:name?cursor=…   holds until a message arrives (25 s at most)
//   POST /channels/:name            publishes the JSON body (64 KiB at most)
import { createServer } from 'node:http';
import { Broker, ConnectionLimiter, LongPollError } from 'longpoll-kit';

const MAX_BODY_BYTES = 64 * 1024;

const broker = new Broker({ capacity: 100, maxAge: 60_000 });
const limiter = new ConnectionLimiter({ perClient: 6 });

const tooLarge = () => new LongPollError('payload_too_large', `The body is over ${MAX_BODY_BYTES} bytes`);

/** The JSON body, read no further than MAX_BODY_BYTES: memory is spent only on bodies we keep. */
async function readJson(req) {
  if (Number(req.headers['content-length']) > MAX_BODY_BYTES) throw tooLarge();
  const chunks = [];
  let size = 0;
  // Leaving the loop must not destroy the request: its socket still carries the 413.
  for await (const chunk of req.iterator({ destroyOnReturn: false })) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new LongPollError('invalid_body', 'The body is not JSON');
  }
}

async function handle(req, res) {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const match = /^\/channels\/([\w.:-]{1,200})$/.exec(url.pathname);
  const send = (status, body, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
    res.end(JSON.stringify(body));
  };
  if (!match) return send(404, { error: 'GET or POST /channels/<name>' });
  const channel = match[1];
  try {
    if (req.method === 'POST') return send(201, await broker.publish(channel, await readJson(req)));
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
    const failure = LongPollError.from(error);
    // A body left unread: close the connection after the answer instead of reading the rest.
    const headers = req.complete ? {} : { connection: 'close' };
    // Node would then destroy the socket as soon as the answer is written, and a reset while the
    // client still sends can wipe the answer before the client reads it: linger instead (end our
    // side, stop reading, destroy two seconds later), as longpoll-kit's adapters do.
    if (!req.complete) {
      req.socket.destroySoon = function lingeringClose() {
        this.end();
        setImmediate(() => this.pause());
        setTimeout(() => this.destroy(), 2000).unref();
      };
    }
    send(failure.status, { code: failure.code, detail: failure.message, earliestCursor: failure.earliestCursor }, headers);
  }
}

const server = createServer(
  // A request (its body included) has 10 s to arrive, checked every second; Node answers 408.
  // A held GET is not concerned: its request was complete when it started waiting.
  { requestTimeout: 10_000, headersTimeout: 10_000, connectionsCheckingInterval: 1_000 },
  (req, res) => void handle(req, res),
);

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`longpoll-kit quickstart on http://127.0.0.1:${port}/channels/demo`);
  console.log(`  poll:    curl 'http://127.0.0.1:${port}/channels/demo'`);
  console.log(`  publish: curl -X POST -d '{"text":"hi"}' 'http://127.0.0.1:${port}/channels/demo'`);
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
