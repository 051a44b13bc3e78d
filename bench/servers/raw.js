import { createServer } from 'node:http';

/**
 * The limit: node:http holding every GET /poll in an array, and answering all of them with one
 * pre-serialised body and a content-length. No history, no cursor, no disconnect handling:
 * nothing any real system can do with less work. The body and headers have the shape and size
 * of longpoll-kit's answer (a message with an id and a timestamp, a cursor), so that the load
 * generator has the same bytes to read from both.
 */
export function start() {
  /** @type {import('node:http').ServerResponse[]} */
  let held = [];
  let sequence = 0;
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url?.startsWith('/poll')) {
      held.push(res);
      return;
    }
    res.writeHead(404).end();
  });
  return {
    server,
    held: () => held.length,
    /** @param {unknown} data */
    publish(data) {
      const now = new Date();
      const id = `${now.getTime().toString(32).toUpperCase().padStart(10, '0')}${String(++sequence).padStart(16, '0')}`;
      const cursor = `RAWEPOCH00.raw.${sequence.toString(36)}`;
      const message = { id, channel: 'bench', data, publishedAt: now.toISOString() };
      const body = Buffer.from(JSON.stringify({ messages: [message], cursor, timedOut: false }));
      const headers = {
        'cache-control': 'no-store',
        'longpoll-cursor': cursor,
        'content-type': 'application/json; charset=utf-8',
        'content-length': body.length,
      };
      const answered = held;
      held = [];
      for (const res of answered) {
        res.writeHead(200, headers);
        res.end(body);
      }
    },
  };
}
