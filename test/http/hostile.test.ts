/**
 * Hostile clients against every adapter, on real sockets: pipelined polls on a connection that
 * goes away, clients that never read their answers, bodies that trickle or are refused, hooks
 * that hang, listeners that throw, hot loops. Each resource a request takes must be given back
 * when its connection needs it no more, and each wait must end by itself.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter } from '../../src/index.js';
import { ADAPTERS, PREFIX, startServer, type AnyOptions, type TestServer } from '../support/servers.js';
import { rawConnection } from '../support/slow-clients.js';
import { eventually, expectProblem, hold, send, until } from './requests.js';

/** A raw connection to the server, for what an HTTP client library would not do. */
async function rawSocket(server: TestServer): Promise<Socket> {
  const { port } = new URL(server.origin);
  const socket = connect(Number(port), '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Reads the socket until it closes, resolving with what it received; rejects after `within` ms. */
function closed(socket: Socket, within: number): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.resume(); // a 'data' listener alone does not resume a socket paused on purpose
  socket.on('error', () => {});
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the socket was still open after ${within} ms`)), within);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

function get(path: string): string {
  return `GET ${PREFIX}/${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
}

describe.each(ADAPTERS)('hostile clients, %s adapter', (adapter) => {
  let broker: Broker<unknown>;
  let server: TestServer | undefined;
  const sockets: Socket[] = [];

  async function start(options: AnyOptions = {}): Promise<TestServer> {
    broker = new Broker<unknown>();
    server = await startServer(adapter, broker, options);
    return server;
  }

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await server?.close();
    server = undefined;
    await broker?.close();
  });

  it('frees every pipelined held poll and its lease as soon as the connection closes', async () => {
    const limiter = new ConnectionLimiter({ perClient: 1000 });
    const server = await start({ limiter });
    const socket = await rawSocket(server);
    sockets.push(socket);
    socket.write(Array.from({ length: 50 }, () => get('room?wait=30')).join(''));
    // On Node's http server a connection holds one poll at a time: each request pipelined behind
    // a held poll answers it (a timeout). A fetch runtime holds them all.
    const held = adapter === 'fetch' ? 50 : 1;
    await until(() => broker.stats().waiters === held && limiter.stats().total === held, `${held} pipelined polls are held`);
    socket.destroy();
    expect(await eventually(() => broker.stats().waiters === 0 && limiter.stats().total === 0, 500)).toBe(true);
  });

  /** `GET {prefix}?channels=…` as a raw request line. */
  function getMany(query: string): string {
    return `GET ${PREFIX}?${query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
  }

  it('frees pipelined many-channel polls, their waiters and their leases on every channel, as soon as the connection closes', async () => {
    const limiter = new ConnectionLimiter({ perClient: 1000 });
    const server = await start({ limiter });
    const socket = await rawSocket(server);
    sockets.push(socket);
    socket.write(Array.from({ length: 20 }, (_, i) => getMany(`channels=a,b,c${i % 2}&wait=30`)).join(''));
    // How many stay held is for the next test; here every one must be freed with the connection.
    await until(() => broker.stats().waiters >= 1 && broker.stats().waiters === limiter.stats().total && limiter.stats().channels >= 3, 'the polls are held');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(limiter.stats().total).toBe(broker.stats().waiters);
    socket.destroy();
    expect(await eventually(() => broker.stats().waiters === 0 && limiter.stats().total === 0 && limiter.stats().channels === 0, 500)).toBe(true);
    expect(broker.stats().channels).toBe(0);
  });

  // A request pipelined behind a poll that is not held yet (a many-channel poll still reading
  // its channels, a poll still in `authorize`) answers it as soon as its read finds nothing
  // (`PollTicket.expired`). A fetch runtime holds them all (see above).
  (adapter === 'fetch' ? it.skip : it).each([
    ['many-channel polls', {}, (i: number) => getMany(`channels=a,b,c${i % 2}&wait=30`)],
    ['polls behind an asynchronous authorize', { authorize: async () => true }, () => get('room?wait=30')],
  ])('holds one poll per connection for pipelined %s', async (_, options, request) => {
    const limiter = new ConnectionLimiter({ perClient: 1000 });
    const server = await start({ limiter, ...options });
    const socket = await rawSocket(server);
    sockets.push(socket);
    socket.write(Array.from({ length: 20 }, (_, i) => request(i)).join(''));
    await until(() => broker.stats().waiters >= 1 && broker.stats().waiters === limiter.stats().total, 'the polls are held');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(broker.stats().waiters, 'polls held on one connection').toBe(1);
  });

  it('bounds a flood of many-channel polls of 32 channels each by the client cap, and frees every channel after', async () => {
    const limiter = new ConnectionLimiter({ perClient: 6 });
    const server = await start({ limiter });
    const channels = Array.from({ length: 32 }, (_, i) => `flood${i}`).join(',');
    const requests = Array.from({ length: 100 }, () => hold(`${server.origin}${PREFIX}?channels=${channels}&wait=20`, { timeout: 10_000 }));
    const refused: string[] = [];
    for (const request of requests) {
      void request.answer.then((answer) => {
        if (answer?.status === 429) refused.push(answer.text);
      });
    }
    expect(await eventually(() => refused.length === 94, 5_000), `94 of 100 refused (${refused.length})`).toBe(true);
    for (const text of refused) expect(JSON.parse(text)).toMatchObject({ code: 'limit_exceeded', limit: 'client' });
    // Six held: one waiter and one lease each, the lease on all 32 channels.
    expect(broker.stats().waiters).toBe(6);
    expect(limiter.stats()).toMatchObject({ total: 6, clients: 1, channels: 32 });
    for (const request of requests) request.destroy();
    await Promise.all(requests.map((request) => request.answer));
    expect(await eventually(() => broker.stats().waiters === 0 && limiter.stats().total === 0 && limiter.stats().channels === 0, 1_000)).toBe(true);
  });

  it('counts a many-channel poll once toward the client cap and once toward each of its channels caps', async () => {
    const limiter = new ConnectionLimiter({ perClient: 2, perChannel: 1 });
    const server = await start({ limiter });
    const url = new URL(server.origin);
    // Client 127.0.0.1 holds two polls over five channels: two toward its cap, not five.
    const first = hold(`${server.origin}${PREFIX}?channels=a,b,c&wait=20`);
    const second = hold(`${server.origin}${PREFIX}?channels=d,e&wait=20`);
    await until(() => limiter.stats().total === 2 && limiter.stats().channels === 5, 'two polls held on five channels');
    expect(expectProblem(await send(`${server.origin}${PREFIX}?channels=f&wait=0`), 429, 'limit_exceeded').limit).toBe('client');
    // Another client (127.0.0.2) finds each of those channels full, alone or in a list.
    const other = async (path: string) => {
      const connection = await rawConnection(url, `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`, '127.0.0.2');
      await Promise.race([connection.closed, new Promise((resolve) => setTimeout(resolve, 3_000))]);
      connection.socket.destroy();
      const text = connection.received();
      return { status: await connection.status, body: text.slice(text.indexOf('\r\n\r\n') + 4) };
    };
    for (const path of [`${PREFIX}/b?wait=0`, `${PREFIX}?channels=x,y,e&wait=0`]) {
      const answer = await other(path);
      expect(answer.status, path).toBe(429);
      expect(answer.body).toContain('"limit":"channel"');
    }
    expect((await other(`${PREFIX}?channels=x,y&wait=0`)).status).toBe(200);
    first.destroy();
    second.destroy();
    await Promise.all([first.answer, second.answer]);
    expect(await eventually(() => limiter.stats().total === 0 && limiter.stats().channels === 0 && limiter.stats().clients === 0, 500)).toBe(true);
  });

  // A fetch runtime owns its connections: how it treats requests pipelined behind a held
  // response is its own (the adapter never sees the connection). The Node adapters answer a held
  // poll as soon as another request arrives behind it, so Node never stops reading the connection.
  it.skipIf(adapter === 'fetch')('frees everything at once when a client that pipelined mixed requests behind a held poll goes away', async () => {
    const limiter = new ConnectionLimiter({ perClient: 10_000 });
    const server = await start({ limiter, publish: true });
    for (let i = 0; i < 20; i++) await broker.publish('busy', { i, text: 'x'.repeat(500) });
    const socket = await rawSocket(server);
    sockets.push(socket);
    // A held poll at the head, then answers that pile up behind it (more than Node lets queue
    // before it stops reading the connection), publishes, bad requests, and held polls again.
    const requests = [get('room?wait=30')];
    for (let i = 0; i < 100; i++) {
      requests.push(get('busy?wait=0&limit=1000'), get('room?wait=x'), get('other?wait=30'));
      requests.push(`POST ${PREFIX}/room HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n1`);
    }
    requests.push(get('quiet?wait=30'));
    socket.write(requests.join(''));
    await until(() => broker.stats().waiters === 1, 'the last poll is held, the earlier ones answered');
    socket.destroy();
    expect(await eventually(() => broker.stats().waiters === 0 && limiter.stats().total === 0, 500)).toBe(true);
  });

  it('counts a request whose clientKey throws or gives no string under the socket address, never a 500', async () => {
    const limiter = new ConnectionLimiter({ perClient: 1 });
    let calls = 0;
    const server = await start({
      limiter,
      clientKey: () => {
        if (++calls % 2) throw new Error('no such header');
        return 42 as unknown as string;
      },
    });
    const held = hold(server.url('room', 'wait=5'));
    await until(() => limiter.stats().total === 1, 'the first poll holds its lease');
    expect(expectProblem(await send(server.url('room', 'wait=0')), 429, 'limit_exceeded').limit).toBe('client');
    held.destroy();
    await held.answer;
  });

  // As for pipelining behind a held poll, what a fetch runtime does with requests pipelined
  // behind an answer that closes the connection is the runtime's.
  it.skipIf(adapter === 'fetch')('processes nothing pipelined behind an answer that closes the connection', async () => {
    const server = await start({ publish: true });
    const socket = await rawSocket(server);
    sockets.push(socket);
    const publish = `POST ${PREFIX}/room HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n1`;
    // A body too large for maxBodyBytes: refused (413) with Connection: close, then two publishes.
    const refused = `POST ${PREFIX}/room HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n`;
    socket.write(refused + ' '.repeat(100_000) + publish + publish);
    const received = await closed(socket, 5_000);
    expect(received).toMatch(/^HTTP\/1\.1 413 /);
    expect(received.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(broker.stats().messages).toBe(0);
  });

  it('answers 408 and closes the connection when a publish body trickles past bodyTimeout', async () => {
    const server = await start({ publish: true, bodyTimeout: 300 });
    const socket = await rawSocket(server);
    sockets.push(socket);
    const started = performance.now();
    socket.write(`POST ${PREFIX}/room HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":`);
    const received = await closed(socket, 3_000);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(received.toLowerCase()).toContain('connection: close');
    expect(received).toContain('"code":"request_timeout"');
    expect(performance.now() - started).toBeLessThan(2_500);
    expect(broker.stats().messages).toBe(0);
  });

  it('answers 503 with Retry-After to every request whose authorize never settles, holding nothing', async () => {
    const limiter = new ConnectionLimiter({ perClient: 1000 });
    const server = await start({ limiter, authorize: () => new Promise<boolean>(() => {}), authorizeTimeout: 200 });
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => send(server.url(`c${i % 5}`, 'wait=20'), { timeout: 3_000 })));
    for (const answer of answers) {
      expectProblem(answer, 503, 'unavailable');
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    expect(broker.stats().waiters).toBe(0);
    expect(limiter.stats().total).toBe(0);
  });

  it('still answers 429 when a limit listener throws', async () => {
    const limiter = new ConnectionLimiter({ perClient: 1 });
    limiter.on('limit', () => {
      throw new Error('metrics broke');
    });
    const errors: Error[] = [];
    limiter.on('error', (error) => errors.push(error));
    const server = await start({ limiter });
    const first = hold(server.url('room', 'wait=5'));
    await until(() => limiter.stats().total === 1, 'the first poll holds its lease');
    expectProblem(await send(server.url('room', 'wait=0')), 429, 'limit_exceeded');
    expect(errors.map((error) => error.message)).toEqual(['metrics broke']);
    first.destroy();
    await first.answer;
  });

  it('charges every request under the prefix to its client: a hot loop gets 429 limit rate with Retry-After', async () => {
    const limiter = new ConnectionLimiter({ rate: { requests: 10, per: 60_000 } });
    const server = await start({ limiter });
    const statuses: number[] = [];
    // Polls, bad queries and bad cursors all count.
    const queries = ['wait=0', 'wait=x', 'cursor=garbage&wait=0'];
    for (let i = 0; i < 15; i++) statuses.push((await send(server.url('room', queries[i % 3]))).status);
    expect(statuses.slice(0, 10)).not.toContain(429);
    expect(statuses.slice(10)).toEqual([429, 429, 429, 429, 429]);
    const refused = await send(server.url('room', 'wait=0'));
    const body = expectProblem(refused, 429, 'limit_exceeded');
    expect(body.limit).toBe('rate');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  it('frees the waiter of a subclass that listens to the abort signal itself', async () => {
    class Listening extends Broker<unknown> {
      override poll(channel: string, options?: Parameters<Broker<unknown>['poll']>[1]) {
        const polled = super.poll(channel, options);
        options?.signal?.addEventListener('abort', () => {});
        return polled;
      }
    }
    const listening = new Listening();
    broker = listening;
    server = await startServer(adapter, listening, {});
    const held = hold(server.url('room', 'wait=20'));
    await until(() => listening.stats().waiters === 1, 'the poll is held');
    held.destroy();
    await held.answer;
    expect(await eventually(() => listening.stats().waiters === 0, 500)).toBe(true);
  });

  // A fetch runtime writes the Response itself: the lease ends when it takes the body, and the
  // socket is the runtime's to time out.
  if (adapter === 'fetch') return;

  it('keeps the lease of an answer the client does not read, then cuts the connection after sendTimeout', async () => {
    const limiter = new ConnectionLimiter({ perClient: 3 });
    // Long enough that a loaded machine still asks the 429 below before it runs out.
    const server = await start({ limiter, sendTimeout: 2_000 });
    // 1,000 messages of 30 KB: an answer of 30 MB, more than the kernel's socket buffers hold.
    const text = 'x'.repeat(30_000);
    for (let i = 0; i < 1000; i++) await broker.publish('big', { i, text });
    const clients: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const socket = await rawSocket(server);
      sockets.push(socket);
      clients.push(socket);
      socket.pause(); // a client that never reads
      socket.write(get('big?wait=0&limit=1000'));
    }
    // Reading 30 MB out of the history and writing it takes a moment on a busy machine.
    expect(await eventually(() => limiter.stats().total === 3, 10_000), 'three answers are being written').toBe(true);
    // The answers have not left: the client's cap is still taken.
    expectProblem(await send(server.url('big', 'wait=0&limit=1')), 429, 'limit_exceeded');
    // 2 s without progress: the server gives up on them.
    expect(await eventually(() => limiter.stats().total === 0, 6_000)).toBe(true);
    // A paused socket notices nothing: once it reads, it finds the connection closed.
    await Promise.all(clients.map((socket) => closed(socket, 3_000)));
    expect((await send(server.url('big', 'wait=0&limit=1'))).status).toBe(200);
  });

  it('closes the connection instead of reading a refused body to its end', async () => {
    const server = await start({ publish: false });
    const socket = await rawSocket(server);
    sockets.push(socket);
    const done = closed(socket, 8_000);
    socket.write(`POST ${PREFIX}/room HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n`);
    const chunk = Buffer.alloc(1 << 20, 0x20);
    let sent = 0;
    let open = true;
    socket.once('close', () => (open = false));
    // Up to 256 MiB, as fast as the server takes it.
    while (open && sent < 256 << 20) {
      const more = socket.write(chunk);
      sent += chunk.length;
      if (!more) {
        await Promise.race([
          new Promise((resolve) => socket.once('drain', resolve)),
          new Promise((resolve) => socket.once('close', resolve)),
          new Promise((resolve) => setTimeout(resolve, 3_000)),
        ]);
      }
    }
    const received = await done;
    expect(received).toMatch(/^HTTP\/1\.1 405 /);
    expect(received.toLowerCase()).toContain('connection: close');
    expect(sent).toBeLessThan(64 << 20);
  });
});
