import { createServer } from 'node:http';

/**
 * The limit: node:http holding every GET /poll in an array, and answering all of them with one
 * pre-serialised body and a content-length. No history, no cursor, no disconnect handling:
 * nothing any real system can do with less work.
 */
export function start() {
  /** @type {import('node:http').ServerResponse[]} */
  let held = [];
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/poll') {
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
      const body = Buffer.from(JSON.stringify(data));
      const headers = { 'content-type': 'application/json', 'content-length': body.length, 'cache-control': 'no-store' };
      const answered = held;
      held = [];
      for (const res of answered) {
        res.writeHead(200, headers);
        res.end(body);
      }
    },
  };
}
