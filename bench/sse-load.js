/**
 * The Server-Sent Events load generator, in its own process: `node bench/sse-load.js <port>
 * <path>`, run by bench/sse.js. It opens streams (`GET <path>` with `Accept: text/event-stream`)
 * over plain node:net sockets to 127.0.0.1, one socket each, decodes the chunked body, splits it
 * into events and parses each message's `data:` JSON, as a client must. Over IPC: open N streams
 * (each counts as open once its starting `id:` arrived), count message events, report the
 * monotonic time of the first and the last. A new stream resumes from the newest `id:` seen, so
 * it waits for the next message instead of reading the history.
 */
import net from 'node:net';
import { answerRequests } from './rpc.js';

const [port = '', path = ''] = process.argv.slice(2);
const CRLF = Buffer.from('\r\n');
const CRLF2 = Buffer.from('\r\n\r\n');
/** Connects in flight at once: a burst of thousands overflows the listen backlog. */
const OPENING = 1000;

let newest = '';
let messages = 0;
let first = 0n;
let last = 0n;
let open = 0;
/** @type {string[]} */
const errors = [];
/** @type {{ count: number, resolve: () => void } | undefined} */
let waiting;
/** @type {net.Socket[]} */
const sockets = [];

/** @param {string} message */
function fail(message) {
  if (errors.length < 10) errors.push(message);
}

/** One event block (the lines between blank lines). @param {{ started: boolean }} stream @param {string} block */
function event(stream, block) {
  let id;
  let type = 'message';
  let data;
  for (const line of block.split('\n')) {
    if (line.startsWith('id: ')) id = line.slice(4);
    else if (line.startsWith('event: ')) type = line.slice(7);
    else if (line.startsWith('data: ')) data = line.slice(6);
  }
  if (id !== undefined) newest = id;
  if (!stream.started && id !== undefined) {
    stream.started = true;
    open++;
    stream.onStart?.();
  }
  if (data === undefined) return;
  if (type !== 'message') {
    fail(`event: ${type} ${data}`);
    return;
  }
  JSON.parse(data);
  last = process.hrtime.bigint();
  if (messages === 0) first = last;
  messages++;
  if (waiting && messages >= waiting.count) waiting.resolve();
}

/** Opens one stream; resolves once its starting `id:` arrived. */
function openStream() {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    sockets.push(socket);
    const stream = { started: false, head: false, text: '', /** @type {Buffer | undefined} */ pending: undefined, onStart: resolve };
    socket.setNoDelay(true);
    socket.once('connect', () => {
      const cursor = newest ? `${path.includes('?') ? '&' : '?'}cursor=${encodeURIComponent(newest)}` : '';
      socket.write(`GET ${path}${cursor} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`, 'latin1');
    });
    socket.on('error', (error) => {
      fail(String(error));
      reject(error);
    });
    socket.on('close', () => {
      if (!stream.started) reject(new Error('The server closed a stream before it started'));
      else if (!closing) fail('The server closed a stream');
    });
    socket.on('data', (chunk) => {
      let buffer = stream.pending ? Buffer.concat([stream.pending, chunk]) : chunk;
      let at = 0;
      if (!stream.head) {
        const end = buffer.indexOf(CRLF2);
        if (end === -1) {
          stream.pending = buffer;
          return;
        }
        const head = buffer.toString('latin1', 0, end);
        if (!head.startsWith('HTTP/1.1 200') || !/\r\ntransfer-encoding: chunked/i.test(head)) {
          reject(new Error(`Not a stream: ${head} ${buffer.toString('utf8', end + 4, end + 400)}`));
          socket.destroy();
          return;
        }
        stream.head = true;
        at = end + 4;
      }
      for (;;) {
        const line = buffer.indexOf(CRLF, at);
        if (line === -1) break;
        const size = Number.parseInt(buffer.toString('latin1', at, line), 16);
        if (size === 0) break;
        if (buffer.length < line + 2 + size + 2) break;
        stream.text += buffer.toString('utf8', line + 2, line + 2 + size);
        at = line + 2 + size + 2;
      }
      stream.pending = at < buffer.length ? buffer.subarray(at) : undefined;
      for (let end = stream.text.indexOf('\n\n'); end !== -1; end = stream.text.indexOf('\n\n')) {
        const block = stream.text.slice(0, end);
        stream.text = stream.text.slice(end + 2);
        event(stream, block);
      }
    });
  });
}
let closing = false;

answerRequests({
  /** Opens streams until `count` are open. */
  async open({ count }) {
    while (sockets.length < count) {
      const batch = Math.min(OPENING, count - sockets.length);
      await Promise.all(Array.from({ length: batch }, openStream));
    }
    if (errors.length > 0) throw new Error(errors.join('; '));
    return open;
  },
  /** Starts counting message events afresh. */
  mark() {
    messages = 0;
    errors.length = 0;
  },
  /** Resolves with the times (ns) of the first and the last message event once `count` arrived since the mark. */
  async await({ count, timeout }) {
    if (messages < count) {
      let timer;
      try {
        await new Promise((resolve, reject) => {
          waiting = { count, resolve };
          timer = setTimeout(() => reject(new Error(`${messages} of ${count} events after ${timeout} ms; errors: ${errors.join('; ')}`)), timeout);
        });
      } finally {
        clearTimeout(timer);
        waiting = undefined;
      }
    }
    return { first: String(first), last: String(last), messages, errors: [...errors] };
  },
  /** Closes every stream (the server sees its clients leave). */
  close() {
    closing = true;
    for (const socket of sockets) socket.destroy();
    sockets.length = 0;
    open = 0;
  },
});
