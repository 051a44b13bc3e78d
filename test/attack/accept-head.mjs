// Accept header tricks, HEAD, Last-Event-ID oddities, half-closed sockets, on the node adapter.
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { Broker, ConnectionLimiter } from '../../dist/index.js';
import { longPoll } from '../../dist/adapters/node.js';

const broker = new Broker();
const limiter = new ConnectionLimiter();
const server = createServer(longPoll(broker, { prefix: '/c', limiter, heartbeat: 300 })).listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const { port } = server.address();

function raw(request, ms = 700, halfClose = false) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += d.toString()));
    socket.on('connect', () => {
      socket.write(request);
      if (halfClose) socket.end();
    });
    const done = () => resolve({ text, open: !socket.destroyed && !socket.readableEnded });
    socket.on('close', () => { clearTimeout(t); done(); });
    const t = setTimeout(() => { const r = { text, open: !socket.readableEnded }; socket.destroy(); resolve(r); }, ms);
  });
}
const head = (t) => t.split('\r\n')[0] + ' | ' + (/content-type: ([^\r]*)/i.exec(t)?.[1] ?? '-');
for (const accept of ['text/event-stream', 'TEXT/EVENT-STREAM', 'Text/Event-Stream', 'application/json, text/event-stream;q=0', 'text/event-streamx', 'application/x-text/event-stream', '*/*']) {
  const r = await raw(`GET /c/room?wait=0.2 HTTP/1.1\r\nHost: x\r\nAccept: ${accept}\r\n\r\n`, 600);
  console.log(JSON.stringify(accept).padEnd(45), head(r.text));
}
let r = await raw(`HEAD /c/room HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`, 600);
console.log('HEAD', head(r.text), 'open:', r.open, 'leases', limiter.stats().total);
r = await raw(`GET /c/room HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: \u00e9\u00e9\r\n\r\n`, 600);
console.log('LEID latin1', head(r.text));
r = await raw(Buffer.from(`GET /c/room HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: \u2603\r\n\r\n`, 'utf8'), 600);
console.log('LEID utf8 snowman', head(r.text));
r = await raw(`GET /c/room HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: a\rb\r\n\r\n`, 600);
console.log('LEID bare CR', head(r.text));
r = await raw(`GET /c/room HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: \r\n\r\n`, 600);
console.log('LEID empty', head(r.text));
const c = await broker.publish('x', 1);
r = await raw(`GET /c/room HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: ${c.cursor}\r\n\r\n`, 600);
console.log('LEID other channel', head(r.text));
const many = await broker.readMany(['x', 'y'], {});
r = await raw(`GET /c?channels=room,q HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: ${many.cursor}\r\n\r\n`, 600);
console.log('composite LEID from other list', head(r.text), JSON.stringify(r.text.split('\r\n\r\n')[1]?.slice(0, 200)));
// half-closed: FIN after the request, keep reading
r = await raw(`GET /c/room HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`, 1500, true);
console.log('half-closed', head(r.text), 'pings', (r.text.match(/: ping/g) ?? []).length, 'still open at 1.5 s', r.open);
await new Promise((res) => setTimeout(res, 200));
console.log('leases after all', limiter.stats().total, 'waiters', broker.stats().waiters);
await broker.close();
server.closeAllConnections();
server.close();
