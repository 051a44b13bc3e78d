/**
 * An event stream on Node's http server writes each chunk after its first straight to the
 * socket, framed as an HTTP/1.1 chunk by longpoll-kit (`writeFramed`, src/http/connection.ts):
 * one buffer per write, the frame made once for every stream that writes the same chunk. Against
 * `response.write`, which hands the socket the chunk's size, CRLF, the chunk and CRLF as four
 * writes. Both cork the socket until the next tick. Real sockets on 127.0.0.1, read in this
 * process (the same bytes for both variants); timed: the CPU of writing a chunk to 500 streams
 * until every client has read it. Three cases: every stream writes the same chunk (a publish on
 * one channel); each its own (many-channel streams); ten chunks each in one turn (a burst).
 */
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { writeFramed } from '../../dist/http/connection.js';
import { encode } from '../../dist/poll.js';
import { compareAsync } from './harness.js';

const STREAMS = 500;

if (process.argv[2] === '--read') {
  // The clients: STREAMS streams, and a message to the parent each time they read up to its target.
  let received = 0;
  let target = Number.POSITIVE_INFINITY;
  const check = () => {
    if (received < target) return;
    target = Number.POSITIVE_INFINITY;
    process.send(received);
  };
  process.on('message', (value) => {
    if (value === 'zero') {
      // Every response's head has arrived: count from here.
      received = 0;
      process.send('zeroed');
      return;
    }
    target = value;
    check();
  });
  process.on('disconnect', () => process.exit(0));
  for (let i = 0; i < STREAMS; i++) {
    const socket = net.connect(Number(process.argv[3]), '127.0.0.1');
    socket.on('data', (data) => {
      received += data.length;
      check();
    });
    socket.write('GET /events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n');
  }
  process.send('connected');
  await new Promise(() => {});
}
/** Every response, held open once its headers went out. */
const responses = [];
const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
  res.write('retry: 2000\n\n');
  responses.push(res);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();

// The clients read in a child process, so that only the server's work is timed.
const reader = fork(fileURLToPath(import.meta.url), ['--read', String(port)]);
await new Promise((resolve) => reader.once('message', resolve));
while (responses.length < STREAMS) await new Promise((resolve) => setTimeout(resolve, 5));
await new Promise((resolve) => setTimeout(resolve, 100));
reader.send('zero');
await new Promise((resolve) => reader.once('message', resolve));

let sent = 0;
/** Resolves once the clients have read `bytes` more. */
function readAll(bytes) {
  sent += bytes;
  reader.send(sent);
  return new Promise((resolve) => reader.once('message', resolve));
}

const event = (i, stream) =>
  encode(`id: 0M8S0E0J64.rb7rnd.${i}\nevent: message\ndata: {"channel":"room","data":{"text":"hello","i":${i},"stream":${stream}}}\n\n`);
/** What the client reads of `chunk`: its frame. */
const framedSize = (chunk) => chunk.byteLength.toString(16).length + chunk.byteLength + 4;

const framed = (res, chunk) => writeFramed(res, chunk) ?? res.write(chunk);
const plain = (res, chunk) => res.write(chunk);

/** `n` times: one chunk, the same for every stream, written to each. */
const shared = (write) => async (n) => {
  for (let i = 0; i < n; i++) {
    const chunk = event(i, 0);
    const done = readAll(framedSize(chunk) * STREAMS);
    for (const res of responses) write(res, chunk);
    await done;
  }
  return sent;
};
/** `n` times: each stream its own chunk. */
const distinct = (write) => async (n) => {
  for (let i = 0; i < n; i++) {
    const chunks = responses.map((_, stream) => event(i, stream));
    const done = readAll(chunks.reduce((sum, chunk) => sum + framedSize(chunk), 0));
    responses.forEach((res, stream) => write(res, chunks[stream]));
    await done;
  }
  return sent;
};
/** `n` times: ten chunks in one turn, each written to every stream. */
const burst = (write) => async (n) => {
  for (let i = 0; i < n; i++) {
    const chunks = Array.from({ length: 10 }, (_, k) => event(i * 10 + k, 0));
    const done = readAll(chunks.reduce((sum, chunk) => sum + framedSize(chunk), 0) * STREAMS);
    for (const chunk of chunks) for (const res of responses) write(res, chunk);
    await done;
  }
  return sent;
};

await compareAsync(
  `a chunk written to ${STREAMS} event streams on Node's http server, the same for every stream`,
  { name: 'framed once, one write to each socket', run: shared(framed) },
  { name: 'response.write: four writes to each socket', run: shared(plain) },
  { n: 10 },
);
await compareAsync(
  `a chunk written to each of ${STREAMS} event streams, its own for every stream`,
  { name: 'framed per stream, one write to each socket', run: distinct(framed) },
  { name: 'response.write: four writes to each socket', run: distinct(plain) },
  { n: 10 },
);
await compareAsync(
  `ten chunks written in one turn to ${STREAMS} event streams`,
  { name: 'framed, one write per chunk, corked', run: burst(framed) },
  { name: 'response.write, corked', run: burst(plain) },
  { n: 2 },
);
reader.kill();
server.closeAllConnections();
server.close();
