/**
 * A fanout's polls share one frozen HTTP answer (`sharedResponse`, src/http/answer.ts: status,
 * headers and bytes made once per broker answer), against an answer and a headers object made
 * per poll (`pollResponse` for each, as before). Timed as `npm run bench` times a fanout: 1,000
 * polls held on keep-alive connections to the Node adapter, read by another process; forced
 * collections (`--expose-gc`) and, 5 ms later, a publish; the server's CPU time until that
 * process has read every answer. The re-polls that follow are not timed. Also prints the heap
 * the publish allocated per poll. In this process the ratio stays within the harness's noise;
 * bench/micro/README.md has the end-to-end figures that keep the trick.
 *
 *   node --expose-gc bench/micro/shared-response.js
 */
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Broker } from '../../dist/index.js';
import { longPoll } from '../../dist/adapters/node.js';
import { pollResponse } from '../../dist/http/answer.js';
import { Exchange } from '../../dist/http/exchange.js';
import { cpuNow, median, report } from './harness.js';

const POLLS = 1000;
const ROUNDS = 15;
const PUBLISHES = 3;

/**
 * The load, in a process of its own: POLLS keep-alive connections to `port` that poll `room`.
 * It says `read` once it has an answer on every connection, and polls again from each answer's
 * cursor when told `poll`, until the parent disconnects.
 */
async function clients(port) {
  const cursors = new Map();
  const poll = (socket, cursor) =>
    socket.write(`GET /channels/room?wait=55${cursor ? `&cursor=${cursor}` : ''} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, 'latin1');
  function client() {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      let text = '';
      socket.setNoDelay(true);
      socket.setEncoding('latin1');
      socket.on('error', reject);
      socket.on('connect', () => {
        poll(socket, '');
        resolve(socket);
      });
      socket.on('data', (chunk) => {
        text += String(chunk);
        const head = text.indexOf('\r\n\r\n');
        if (head === -1) return;
        const length = Number(/content-length: (\d+)/i.exec(text.slice(0, head))?.[1] ?? 0);
        if (text.length < head + 4 + length) return;
        cursors.set(socket, /longpoll-cursor: ([^\r]+)/i.exec(text.slice(0, head))?.[1]);
        text = '';
        if (cursors.size === POLLS && process.connected) process.send('read');
      });
    });
  }
  const sockets = [];
  for (let i = 0; i < POLLS; i += 100) sockets.push(...(await Promise.all(Array.from({ length: 100 }, client))));
  process.on('message', () => {
    const answered = [...cursors];
    cursors.clear();
    for (const [socket, cursor] of answered) poll(socket, cursor);
  });
  await new Promise((resolve) => process.once('disconnect', resolve));
  for (const socket of sockets) socket.destroy();
}

if (process.argv[2] === 'clients') {
  await clients(Number(process.argv[3]));
  process.exit(0);
}
if (!globalThis.gc) throw new Error('Run me with node --expose-gc, as npm run bench:micro does');

// The production method, put back after each round of the alternative (it uses `this` as before).
// eslint-disable-next-line @typescript-eslint/unbound-method
const shared = Exchange.prototype.resolve;
/** What `Exchange.resolve` did before: an answer, and its headers, made for every poll. */
function perPoll(answer) {
  this.write(pollResponse(answer, this.applied, this.timeoutStatus));
}

const broker = new Broker();
const server = createServer(longPoll(broker, { prefix: '/channels' }));
await new Promise((resolve) => server.listen(0, '127.0.0.1', 4096, resolve));
const child = fork(fileURLToPath(import.meta.url), ['clients', String(server.address().port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const held = async () => {
  while (broker.stats().waiters < POLLS) await new Promise((resolve) => setImmediate(resolve));
};

/** Heap allocated while each variant's publishes wrote their answers, bytes per poll. */
const allocated = new Map([
  [shared, []],
  [perPoll, []],
]);

/** Server CPU ns per poll answered, from each publish until the load has read every answer. */
async function timeOf(resolve) {
  Exchange.prototype.resolve = resolve;
  let total = 0;
  for (let i = 0; i < PUBLISHES; i++) {
    await held();
    globalThis.gc();
    globalThis.gc();
    // As in npm run bench, whose memory figure collects a few milliseconds before the publish:
    // the collector is still finishing its work in the background.
    await new Promise((resolve) => setTimeout(resolve, 5));
    const read = new Promise((done) => child.once('message', done));
    const heap = process.memoryUsage().heapUsed;
    const start = cpuNow();
    void broker.publish('room', { text: 'The quick brown fox jumps over the lazy dog, again and again.', i });
    // The publish wrote every answer before it returned: what it allocated is still in the young
    // generation, which the collections just emptied.
    allocated.get(resolve).push((process.memoryUsage().heapUsed - heap) / POLLS);
    await read;
    total += cpuNow() - start;
    child.send('poll');
  }
  return (total * 1e6) / PUBLISHES / POLLS;
}

await timeOf(shared);
await timeOf(perPoll);
const times = { production: [], alternative: [] };
const ratios = [];
for (let round = 0; round < ROUNDS; round++) {
  const first = round % 2 === 0;
  const a = await timeOf(first ? shared : perPoll);
  const b = await timeOf(first ? perPoll : shared);
  const [p, q] = first ? [a, b] : [b, a];
  times.production.push(p);
  times.alternative.push(q);
  ratios.push(q / p);
}
Exchange.prototype.resolve = shared;
await held();
report({
  title: `a publish answering ${POLLS} held polls over TCP (Node adapter), after forced collections, until another process read them all`,
  production: { name: 'one frozen answer per publish, shared', ns: median(times.production) },
  alternative: { name: 'an answer and a headers object per poll', ns: median(times.alternative) },
  ratio: median(ratios),
  rounds: ROUNDS,
});
const bytes = (variant) => Math.round(median(allocated.get(variant)));
console.log(`  heap allocated while writing, per poll: production ${bytes(shared)} B, alternative ${bytes(perPoll)} B`);
console.log(`(checksum ${broker.stats().waiters})`);
child.disconnect();
await broker.close();
server.close();
