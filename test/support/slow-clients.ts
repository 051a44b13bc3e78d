import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

/** A raw HTTP/1.1 connection: what it received, and its first answer's status once it came. */
export interface RawConnection {
  readonly socket: Socket;
  /** Everything received so far. */
  readonly received: () => string;
  /** The first answer's status code, or `undefined` if the connection closed before one. */
  readonly status: Promise<number | undefined>;
  /** Resolves when the socket is closed, by either side. */
  readonly closed: Promise<void>;
}

/**
 * Opens a socket to `url`'s host and port on 127.0.0.1 and writes `head` (and nothing else).
 * `localAddress` picks the source address (any 127.x.y.z on Linux), so one test can be many
 * clients to the limiter.
 */
export async function rawConnection(url: URL, head: string, localAddress?: string): Promise<RawConnection> {
  const socket = connect({ host: '127.0.0.1', port: Number(url.port), localAddress });
  socket.on('error', () => {}); // a reset by the server is an ending like any other here
  await once(socket, 'connect');
  let text = '';
  // Not `once(socket, 'close')`, which rejects on the reset that precedes the close.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const status = new Promise<number | undefined>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (match) resolve(Number(match[1]));
    });
    void closed.then(() => resolve(undefined));
  });
  socket.write(head);
  return { socket, received: () => text, status, closed };
}

/** A GET whose answer is awaited on its own connection: a held poll when `path` holds. */
export function rawGet(url: URL, path: string): Promise<RawConnection> {
  return rawConnection(url, `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
}

/**
 * A POST that announces `declared` bytes of JSON (few enough for any body limit) and sends one
 * byte every 100 ms: a body that does not finish for minutes. The trickle stops when the
 * connection closes.
 */
export async function tricklingPost(url: URL, path: string, declared = 2000): Promise<RawConnection> {
  const connection = await rawConnection(
    url,
    `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n[`,
  );
  const trickle = setInterval(() => connection.socket.write(' '), 100);
  void connection.closed.then(() => clearInterval(trickle));
  return connection;
}

/**
 * A client that pipelines `count` GETs of `path` at once and never reads an answer. When the
 * answers add up to more than the kernel's buffers hold (36 MB at most on Linux with the default
 * `tcp_rmem` and `tcp_wmem` maxima), the server is left with answers it cannot write.
 */
export async function nonReadingClient(url: URL, path: string, count: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port: Number(url.port) });
  socket.on('error', () => {});
  socket.pause();
  await once(socket, 'connect');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`.repeat(count));
  return socket;
}
