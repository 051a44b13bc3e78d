// Serves a WHATWG fetch handler, `(Request, info) => Promise<Response>`, on node:http: what Deno,
// Bun and workers do natively. Two details matter for long polling: the Request's signal must
// abort when the client goes away (so its held poll and lease are freed at once), and the
// socket's address goes in `info.remoteAddr` (the limiter's per-client key).
//
// "Goes away" is the socket's `close`: a response's own `close` fires only for the response at
// the head of a pipelined queue, so pipelined requests would outlive their connection.
import { createServer } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** A node:http server answering every request with `handler`. */
export function serve(handler) {
  return createServer((req, res) => {
    void answer(handler, req, res);
  });
}

/** The abort controllers of each connection's requests that are not answered yet. */
const pending = new WeakMap();

function onSocketClose() {
  for (const gone of pending.get(this) ?? []) gone.abort(new Error('The client went away'));
  pending.delete(this);
}

async function answer(handler, req, res) {
  const gone = new AbortController();
  const { socket } = req;
  let open = pending.get(socket);
  if (!open) {
    open = new Set();
    pending.set(socket, open);
    socket.once('close', onSocketClose);
  }
  open.add(gone);
  res.once('finish', () => open.delete(gone));
  let request;
  try {
    // Joined as text, so that a path such as `//host/x` stays a path.
    const url = new URL(`http://${req.headers.host ?? 'localhost'}${req.url}`);
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    request = new Request(url, {
      method: req.method,
      headers,
      body: hasBody ? Readable.toWeb(req) : null,
      duplex: 'half',
      signal: gone.signal,
    });
  } catch {
    fail(res, 400, 'Bad Request', 'The request URL or headers are not valid');
    return;
  }
  try {
    const response = await handler(request, { remoteAddr: { hostname: req.socket.remoteAddress } });
    // `Response.error()`: the handler saw the client go away.
    if (res.destroyed || response.type === 'error') {
      await response.body?.cancel();
      return;
    }
    if (!req.complete && response.headers.get('connection') === 'close') {
      // A refused body left unread: Node would destroy the socket as soon as the answer is
      // written, and a reset while the client still sends can wipe the answer before the client
      // reads it. Linger instead: end our side, stop reading, destroy two seconds later.
      req.socket.destroySoon = function lingeringClose() {
        this.end();
        setImmediate(() => this.pause());
        setTimeout(() => this.destroy(), 2000).unref();
      };
    }
    // A flat [name, value, name, value…] list keeps repeated headers such as Set-Cookie.
    res.writeHead(response.status, [...response.headers].flat());
    if (!response.body) {
      res.end();
      return;
    }
    // Streamed with backpressure, as a runtime writes it: the handler's answer takes the next
    // piece only once the client has read the last, so a client that does not read keeps its
    // lease (the per-client cap bounds it) until the handler's sendTimeout fails the body,
    // which destroys the response.
    await pipeline(Readable.fromWeb(response.body), res);
  } catch (error) {
    // The connection, not just this response: a response queued behind others is not on the
    // socket yet, and destroying it alone would keep what it buffered until the client leaves.
    if (res.headersSent) req.socket.destroy(error);
    else fail(res, 500, 'Internal Server Error', 'The handler failed');
  }
}

/** The bridge's own errors, in the problem+json shape the handler uses. */
function fail(res, status, title, detail) {
  res.writeHead(status, { 'content-type': 'application/problem+json', 'cache-control': 'no-store' });
  res.end(JSON.stringify({ type: 'about:blank', title, status, detail }));
}
