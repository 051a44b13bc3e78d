// The client's `transport: 'sse'` against hostile servers, each for a few seconds: how many
// requests it makes, what it emits, and how much heap it keeps.
// Usage: node --expose-gc test/attack/client-hostile-sse.mjs [mode...]
import { createServer } from 'node:http';
import { subscribe } from '../../dist/client/index.js';

const SSE = { 'content-type': 'text/event-stream' };
const msg = (id, cursor) => `id: ${cursor}\nevent: message\ndata: ${JSON.stringify({ id, channel: 'room', data: 1, publishedAt: '2026-01-01T00:00:00Z' })}\n\n`;
const modes = {
  // An event that never ends: data without a newline, 64 KiB every 5 ms.
  endless(req, res) { res.writeHead(200, SSE); res.write('data: '); const t = setInterval(() => res.write('x'.repeat(65536)), 5); res.on('close', () => clearInterval(t)); },
  // Only comments, forever.
  comments(req, res) { res.writeHead(200, SSE); const t = setInterval(() => res.write(': c\n'.repeat(1000)), 5); res.on('close', () => clearInterval(t)); },
  // retry: 0, then an end at once.
  retry0(req, res) { res.writeHead(200, SSE); res.end('retry: 0\n\n'); },
  // retry: 0, an end after 1.1 s (a "healthy" stream).
  retry0long(req, res) { res.writeHead(200, SSE); res.write('retry: 0\n\n'); setTimeout(() => res.end(), 1100); },
  // The same message and id again and again.
  sameid(req, res) { res.writeHead(200, SSE); const t = setInterval(() => res.write(msg('m1', 'c1').repeat(50)), 5); res.on('close', () => clearInterval(t)); },
  // The same message and id, then an end at once: a reconnect loop?
  sameidend(req, res) { res.writeHead(200, SSE); res.end(`retry: 0\n\n${msg('m1', 'c1')}`); },
  // A flood of reset events.
  resetflood(req, res) { res.writeHead(200, SSE); const t = setInterval(() => res.write('event: reset\nid: e1\ndata: {"earliestCursor":"e1"}\n\n'.repeat(200)), 5); res.on('close', () => clearInterval(t)); },
  // A reset, then an end at once, each time.
  resetend(req, res) { res.writeHead(200, SSE); res.end('retry: 0\n\nevent: reset\nid: e1\ndata: {"earliestCursor":"e1"}\n\n'); },
  // A 200 that is not an event stream.
  notsse(req, res) { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"messages":[],"cursor":"c","timedOut":true}'); },
  // Headers, then the connection closes.
  closeafterheaders(req, res) { res.writeHead(200, SSE); res.flushHeaders(); setImmediate(() => res.socket.destroy()); },
  // A 410 with its own earliestCursor, each time.
  gone410(req, res) { res.writeHead(410, { 'content-type': 'application/problem+json' }); res.end('{"type":"about:blank","title":"gone","status":410,"code":"cursor_expired","earliestCursor":"e1"}'); },
  // An id: block without data, end at once, each time with a new id.
  idend(req, res) { res.writeHead(200, SSE); res.end(`retry: 0\nid: c${Math.random()}\n\n`); },
};
const selected = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(modes);
const SECONDS = 4;
for (const mode of selected) {
  let requests = 0;
  const server = createServer((req, res) => { requests++; res.on('error', () => {}); modes[mode](req, res); }).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  globalThis.gc?.();
  const heap0 = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const counts = { message: 0, error: 0, reset: 0, open: 0, cursor: 0 };
  const codes = new Set();
  const sub = subscribe(`http://127.0.0.1:${server.address().port}/c/room`, { transport: 'sse', backoff: { initial: 100, max: 2000 } });
  sub.on('message', () => counts.message++);
  sub.on('error', (e) => { counts.error++; codes.add(e.code ?? e.message.slice(0, 40)); });
  sub.on('reset', () => counts.reset++);
  sub.on('open', () => counts.open++);
  sub.on('cursor', () => counts.cursor++);
  let peak = 0;
  const sample = setInterval(() => { const m = process.memoryUsage(); peak = Math.max(peak, m.heapUsed + m.arrayBuffers - heap0); }, 50);
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  clearInterval(sample);
  sub.close();
  server.closeAllConnections();
  server.close();
  console.log(`${mode.padEnd(18)} requests ${String(requests).padStart(5)} in ${SECONDS} s  ${JSON.stringify(counts)} codes ${[...codes].join(',')}  peak heap+ab +${(peak / 1048576).toFixed(1)} MB`);
}
