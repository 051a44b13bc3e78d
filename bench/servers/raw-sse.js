import { createServer } from 'node:http';

/**
 * The limit for Server-Sent Events: node:http keeping every GET /sse response open in an array,
 * and writing one pre-serialised event to all of them. No history, no cursor, no heartbeat, no
 * disconnect handling: nothing a real stream can do with less work. The stream starts as
 * longpoll-kit's does (the headers, a `retry:` line and the starting `id:`), and the event has
 * the shape and size of longpoll-kit's (`id:` a cursor, `event: message`, `data:` a message
 * with an id, its channel and a timestamp), so the load generator reads the same bytes.
 */
export function start() {
  /** @type {import('node:http').ServerResponse[]} */
  const streams = [];
  let sequence = 0;
  const cursorOf = (n) => `RAWEPOCH00.raw.${n.toString(36)}`;
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url?.startsWith('/sse')) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
      res.write(`retry: 2000\n\nid: ${cursorOf(sequence)}\n\n`);
      streams.push(res);
      return;
    }
    res.writeHead(404).end();
  });
  return {
    server,
    held: () => streams.length,
    /** Forgets every stream: the load generator closed its sockets. */
    forget: () => void (streams.length = 0),
    /** @param {unknown} data */
    publish(data) {
      const now = new Date();
      const id = `${now.getTime().toString(32).toUpperCase().padStart(10, '0')}${String(++sequence).padStart(16, '0')}`;
      const message = { id, channel: 'bench', data, publishedAt: now.toISOString() };
      const event = Buffer.from(`id: ${cursorOf(sequence)}\nevent: message\ndata: ${JSON.stringify(message)}\n\n`);
      for (const res of streams) res.write(event);
    },
  };
}
