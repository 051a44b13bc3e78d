/**
 * Event streams on Node's http server write each chunk after the first straight to the socket,
 * framed as HTTP/1.1 chunks by longpoll-kit (`writeFramed`, src/http/connection.ts). What must
 * hold, on real sockets: the body is valid chunked encoding, chunk sizes counted in bytes; a
 * `write` that middleware wrapped (compression does) still sees every byte; an HTTP/1.0 client,
 * which Node answers without chunks, gets no framing in its body; streams of one channel and of
 * many, woken by the same publish, each get their own bytes.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { longPoll } from '../../src/adapters/node.js';
import { Broker } from '../../src/index.js';
import { startServer, type AdapterName, type TestServer } from '../support/servers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Raw {
  readonly bytes: () => Buffer;
  readonly socket: Socket;
}

async function raw(port: number, request: string): Promise<Raw> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(request);
  return { socket, bytes: () => Buffer.concat(chunks) };
}

/** The head and body of a response read so far. */
function split(bytes: Buffer): { head: string; body: Buffer } {
  const end = bytes.indexOf('\r\n\r\n');
  if (end === -1) return { head: '', body: Buffer.alloc(0) };
  return { head: bytes.subarray(0, end).toString('latin1'), body: bytes.subarray(end + 4) };
}

/** A chunked body decoded strictly: every size line, every chunk's length and its CRLF checked. */
function dechunk(body: Buffer): string {
  const parts: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    const line = body.indexOf('\r\n', at);
    if (line === -1) throw new Error(`a chunk size without its CRLF at byte ${at}`);
    const sizeText = body.subarray(at, line).toString('latin1');
    if (!/^[0-9a-f]+$/.test(sizeText)) throw new Error(`not a chunk size: ${JSON.stringify(sizeText)}`);
    const size = Number.parseInt(sizeText, 16);
    const start = line + 2;
    if (start + size + 2 > body.length) throw new Error(`a chunk of ${size} bytes cut short`);
    if (body.subarray(start + size, start + size + 2).toString('latin1') !== '\r\n') throw new Error(`a chunk of ${size} bytes without its CRLF`);
    parts.push(body.subarray(start, start + size));
    at = start + size + 2;
    if (size === 0) break;
  }
  return Buffer.concat(parts).toString('utf8');
}

/** The `data` of each message event of an event-stream body. */
function dataOf(text: string): unknown[] {
  return [...text.matchAll(/^data: (\{.*\})$/gm)].map((match) => (JSON.parse(match[1]!) as { data: unknown }).data);
}

const streamRequest = (path: string, version = '1.1') => `GET ${path} HTTP/${version}\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`;

async function until(check: () => boolean, what: string, within = 5_000): Promise<void> {
  const deadline = performance.now() + within;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('event streams written straight to the socket (Node http server)', () => {
  let broker: Broker<unknown> | undefined;
  let server: Server | undefined;
  let started: TestServer | undefined;
  const sockets: Socket[] = [];

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await broker?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    await started?.close();
    broker = server = started = undefined;
  });

  /** A Node server with the adapter under /channels, `wrap` first seeing every response. */
  async function listen(wrap?: (res: ServerResponse) => void): Promise<number> {
    broker = new Broker<unknown>();
    const handler = longPoll(broker, { prefix: '/channels' });
    server = createServer((req, res) => {
      wrap?.(res);
      handler(req, res);
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return (server.address() as { port: number }).port;
  }

  async function open(port: number, request: string): Promise<Raw> {
    const client = await raw(port, request);
    sockets.push(client.socket);
    return client;
  }

  it.each(['node', 'express', 'koa', 'fastify'] as AdapterName[])(
    'writes valid chunks, sized in bytes, for messages in any script (%s adapter)',
    async (adapter) => {
      broker = new Broker<unknown>();
      started = await startServer(adapter, broker);
      const client = await open(Number(new URL(started.origin).port), streamRequest('/channels/room'));
      await until(() => split(client.bytes()).body.length > 0, 'the stream to start');
      const texts = ['plain', 'héllo wörld', '日本語のテキスト ✓', '🙂'.repeat(40)];
      for (const text of texts) await broker.publish('room', { text });
      await until(() => dataOf(dechunk(split(client.bytes()).body)).length === texts.length, 'every message');
      const { head, body } = split(client.bytes());
      expect(head.toLowerCase()).toContain('transfer-encoding: chunked');
      expect(dataOf(dechunk(body))).toEqual(texts.map((text) => ({ text })));
    },
  );

  it('hands every chunk to a write that middleware wrapped (compression does), in order', async () => {
    const seen: string[] = [];
    const port = await listen((res) => {
      const write = res.write.bind(res) as (chunk: Uint8Array) => boolean;
      res.write = ((chunk: Uint8Array) => {
        seen.push(Buffer.from(chunk).toString('utf8'));
        return write(chunk);
      }) as typeof res.write;
    });
    const client = await open(port, streamRequest('/channels/room'));
    await until(() => split(client.bytes()).body.length > 0, 'the stream to start');
    for (let i = 0; i < 5; i++) await broker!.publish('room', { i });
    await until(() => dataOf(dechunk(split(client.bytes()).body)).length === 5, 'five messages');
    // Every event went through the wrapper: nothing reached the socket behind its back.
    expect(dataOf(seen.join(''))).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
    expect(dataOf(dechunk(split(client.bytes()).body))).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
  });

  it('sends an HTTP/1.0 client, which gets no chunks, the events without framing', async () => {
    const port = await listen();
    const client = await open(port, streamRequest('/channels/room', '1.0'));
    await until(() => split(client.bytes()).body.length > 0, 'the stream to start');
    for (let i = 0; i < 3; i++) await broker!.publish('room', { i });
    await until(() => dataOf(split(client.bytes()).body.toString('utf8')).length === 3, 'three messages');
    const { head, body } = split(client.bytes());
    expect(head.toLowerCase()).not.toContain('transfer-encoding');
    // The events' own lines end in LF; a chunk's framing would bring CRLF and hex sizes.
    expect(body.toString('latin1')).not.toContain('\r\n');
    expect(body.toString('latin1')).toMatch(/^retry: \d+\n/);
  });

  it('writes a stream pipelined behind a held poll in order, before and after its turn comes', async () => {
    const port = await listen();
    const client = await open(
      port,
      'GET /channels/first?wait=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' + streamRequest('/channels/room'),
    );
    await sleep(50);
    // The stream waits its turn: what it writes meanwhile, Node keeps for it.
    await broker!.publish('room', { i: 0 });
    await broker!.publish('room', { i: 1 });
    await broker!.publish('first', { poll: 'answered' });
    await until(() => client.bytes().toString('latin1').includes('event: message'), 'the stream\'s turn');
    await broker!.publish('room', { i: 2 });
    const second = () => {
      const text = client.bytes();
      const at = text.indexOf('HTTP/1.1 200', text.indexOf('HTTP/1.1 200') + 1);
      return at === -1 ? undefined : split(text.subarray(at)).body;
    };
    await until(() => second() !== undefined && dataOf(dechunk(second()!)).length === 3, 'three messages on the stream');
    expect(dataOf(dechunk(second()!))).toEqual([0, 1, 2].map((i) => ({ i })));
  });

  it('gives streams of one channel and of many, woken by the same publishes, each their own bytes', async () => {
    const port = await listen();
    const one = await open(port, streamRequest('/channels/a'));
    const many = await open(port, streamRequest('/channels?channels=a,b'));
    const other = await open(port, streamRequest('/channels/a'));
    for (const client of [one, many, other]) await until(() => split(client.bytes()).body.length > 0, 'the streams to start');
    await broker!.publish('a', { n: 1 });
    await broker!.publish('b', { n: 2 });
    await broker!.publish('a', { n: 3 });
    const data = (client: Raw) => dataOf(dechunk(split(client.bytes()).body));
    await until(() => data(one).length === 2 && data(other).length === 2 && data(many).length === 3, 'every message');
    expect(data(one)).toEqual([{ n: 1 }, { n: 3 }]);
    expect(data(other)).toEqual([{ n: 1 }, { n: 3 }]);
    // Each channel in its order; the channels' messages may interleave either way.
    expect(data(many).filter((message) => (message as { n: number }).n !== 2)).toEqual([{ n: 1 }, { n: 3 }]);
    expect(data(many)).toContainEqual({ n: 2 });
    // The many-channel stream's ids are its own (composite), not the one-channel stream's.
    const ids = (client: Raw) => [...dechunk(split(client.bytes()).body).matchAll(/^id: (.*)$/gm)].map((match) => match[1]);
    expect(ids(many).at(-1)).not.toEqual(ids(one).at(-1));
  });
});
