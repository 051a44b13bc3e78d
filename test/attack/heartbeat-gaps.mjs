// The longest gap between bytes on idle event streams (one-channel and many-channel), opened
// STAGGER ms apart with a heartbeat of HB ms: each must be about one heartbeat. Env DIST for
// another build. Usage: node test/attack/heartbeat-gaps.mjs [streams per kind] [HB] [STAGGER]
import { createServer } from 'node:http';
import { connect } from 'node:net';
const DIST = process.env.DIST ?? '../../dist';
const { Broker } = await import(`${DIST}/index.js`);
const { longPoll } = await import(`${DIST}/adapters/node.js`);
const STREAMS = Number(process.argv[2] ?? 20);
const HB = Number(process.argv[3] ?? 400);
const STAGGER = Number(process.argv[4] ?? 37);
const RUN = HB * 8;
const broker = new Broker();
const server = createServer(longPoll(broker, { prefix: '/c', heartbeat: HB }));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const { port } = server.address();
const gaps = { single: [], many: [] };
function open(kind, delay) {
  setTimeout(() => {
    const s = connect(port, '127.0.0.1');
    let last;
    s.on('connect', () => s.write(`GET /c${kind === 'single' ? '/a?' : '?channels=a,b&'} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`));
    s.on('data', () => { const now = performance.now(); if (last !== undefined) gaps[kind].push(Math.round(now - last)); last = now; });
    s.on('error', () => {});
    setTimeout(() => s.destroy(), RUN);
  }, delay);
}
for (const kind of ['single', 'many']) for (let i = 0; i < STREAMS; i++) open(kind, i * STAGGER);
setTimeout(() => {
  console.log(JSON.stringify({ dist: DIST, streams: STREAMS, heartbeat: HB, maxGapSingle: Math.max(...gaps.single), maxGapMany: Math.max(...gaps.many), over110pct: [...gaps.single, ...gaps.many].filter((g) => g > HB * 1.1).length, gaps: gaps.single.length + gaps.many.length }));
  server.close(); server.closeAllConnections(); broker.close();
}, RUN + STREAMS * STAGGER + 200);
