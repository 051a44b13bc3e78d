/**
 * A minimal HTTP/1.1 keep-alive client over node:net, for the load generator only: one request
 * per connection at a time, idle connections reused, Content-Length and chunked bodies.
 *
 * Why not undici or http.Agent: measured on this machine, receiving 5,000 fanout responses
 * through an undici Pool costs the load generator 3–5× the time the raw server needs to write
 * them, so the figure would measure the client. This client adds as little as a client can.
 */
import net from 'node:net';

const CRLF2 = Buffer.from('\r\n\r\n');

/** @typedef {{ statusCode: number, text: string }} Answer */

class Connection {
  /** @type {Buffer | undefined} */
  pending;
  /** @type {((answer: Answer) => void) | undefined} */
  resolve;
  /** @type {((error: Error) => void) | undefined} */
  reject;
  closed = false;

  /** @param {import('node:net').Socket} socket @param {() => void} onIdle */
  constructor(socket, onIdle) {
    this.socket = socket;
    this.onIdle = onIdle;
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.#data(chunk));
    const fail = (error) => {
      this.closed = true;
      const reject = this.reject;
      this.resolve = this.reject = undefined;
      reject?.(error ?? new Error('The server closed the connection'));
    };
    socket.on('error', fail);
    socket.on('close', () => fail());
  }

  /** @param {string} head @param {Buffer | undefined} body */
  send(head, body) {
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.pending = undefined;
      this.socket.write(body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : head, 'latin1');
    });
  }

  /** @param {Buffer} chunk */
  #data(chunk) {
    const buffer = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    const end = buffer.indexOf(CRLF2);
    if (end === -1) {
      this.pending = buffer;
      return;
    }
    const head = buffer.toString('latin1', 0, end);
    const statusCode = Number(head.slice(9, 12));
    const lower = head.toLowerCase();
    const lengthAt = lower.indexOf('\r\ncontent-length:');
    let text;
    let rest;
    if (lengthAt !== -1) {
      const length = Number.parseInt(lower.slice(lengthAt + 17, lower.indexOf('\r\n', lengthAt + 2) >>> 0), 10);
      if (buffer.length < end + 4 + length) {
        this.pending = buffer;
        return;
      }
      text = buffer.toString('utf8', end + 4, end + 4 + length);
      rest = end + 4 + length;
    } else if (lower.includes('\r\ntransfer-encoding: chunked')) {
      const parts = [];
      let at = end + 4;
      for (;;) {
        const line = buffer.indexOf('\r\n', at);
        if (line === -1) {
          this.pending = buffer;
          return;
        }
        const size = Number.parseInt(buffer.toString('latin1', at, line), 16);
        if (buffer.length < line + 2 + size + 2) {
          this.pending = buffer;
          return;
        }
        if (size === 0) {
          rest = line + 4;
          break;
        }
        parts.push(buffer.subarray(line + 2, line + 2 + size));
        at = line + 2 + size + 2;
      }
      text = Buffer.concat(parts).toString('utf8');
    } else {
      // No length and not chunked: the body ends when the server closes (unused by our servers).
      this.reject?.(new Error(`Unframed response: ${head}`));
      this.socket.destroy();
      return;
    }
    this.pending = rest < buffer.length ? buffer.subarray(rest) : undefined;
    const resolve = this.resolve;
    this.resolve = this.reject = undefined;
    if (lower.includes('\r\nconnection: close')) {
      this.closed = true;
      this.socket.destroy();
    } else {
      this.onIdle();
    }
    resolve?.({ statusCode, text });
  }
}

/** Keep-alive connections to one 127.0.0.1 port; a request takes an idle one or opens one. */
export class KeepAliveClient {
  /** @type {Connection[]} */
  #idle = [];

  /** @param {number} port */
  constructor(port) {
    this.port = port;
  }

  /**
   * @param {{ method: string, path: string, headers?: Record<string, string>, body?: string }} request
   * @returns {Promise<Answer>}
   */
  async request({ method, path, headers = {}, body }) {
    let connection = this.#idle.pop();
    while (connection?.closed) connection = this.#idle.pop();
    if (!connection) connection = await this.#connect();
    const bytes = body === undefined ? undefined : Buffer.from(body);
    let head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${this.port}\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
    if (bytes) head += `Content-Length: ${bytes.length}\r\n`;
    return connection.send(`${head}\r\n`, bytes);
  }

  /** @returns {Promise<Connection>} */
  #connect() {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.port, '127.0.0.1');
      const connection = new Connection(socket, () => this.#idle.push(connection));
      socket.once('connect', () => resolve(connection));
      socket.once('error', reject);
    });
  }

  /** Closes every idle connection. */
  close() {
    for (const connection of this.#idle) connection.socket.destroy();
    this.#idle = [];
  }
}
