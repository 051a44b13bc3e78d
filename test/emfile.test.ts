import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, stillPending } from './examples/held-poll.js';

/** What test/support/emfile-server.mjs reports over IPC. */
interface ServerStats {
  readonly waiters: number;
  readonly leases: number;
  readonly connections: number;
}

const LIMIT = 256;
const CLIENTS = 600;

let server: ChildProcess;
let url: URL;
let stderr = '';

function stats(): Promise<ServerStats> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no stats over IPC within 2 s')), 2000);
    server.once('message', (message: ServerStats) => {
      clearTimeout(timer);
      resolve(message);
    });
    server.send({ type: 'stats' });
  });
}

// The server runs under a lower open-file limit than this process, so it runs out first.
beforeAll(async () => {
  server = spawn('bash', ['-c', `ulimit -n ${LIMIT} && exec "${process.execPath}" test/support/emfile-server.mjs`], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  server.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  url = await new Promise<URL>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`the server printed no URL within 10 s:\n${output}${stderr}`)), 10_000);
    server.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /http:\/\/\S+/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(new URL(match[0]));
      }
    });
  });
});
afterAll(() => {
  server?.kill('SIGKILL');
});

describe('a server out of file descriptors (EMFILE)', () => {
  it(`stays up with ${CLIENTS} held polls against ${LIMIT} descriptors, holds nothing once they leave, and serves again`, async () => {
    expect(readFileSync(`/proc/${server.pid}/limits`, 'utf8')).toMatch(new RegExp(`^Max open files\\s+${LIMIT}\\s`, 'm'));

    const clients: Socket[] = [];
    let refused = 0;
    for (let i = 0; i < CLIENTS; i++) {
      const socket = connect({ host: '127.0.0.1', port: Number(url.port) });
      socket.on('error', () => {});
      // libuv accepts and at once closes what it has no descriptor for: the client sees a close.
      socket.on('close', () => refused++);
      socket.write(`GET /channels/crowded?wait=20 HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
      clients.push(socket);
    }
    expect(await eventually(async () => (await stats()).waiters + refused >= CLIENTS, 10_000)).toBe(true);
    const crowded = await stats();
    // Every accepted connection's poll is held, and the rest were turned away: the limit was hit.
    expect(crowded.waiters).toBe(crowded.leases);
    expect(crowded.waiters).toBeLessThan(LIMIT);
    expect(refused).toBeGreaterThan(CLIENTS - LIMIT);
    expect(server.exitCode).toBeNull();

    for (const socket of clients) socket.destroy();
    expect(await eventually(async () => {
      const { waiters, leases, connections } = await stats();
      return waiters === 0 && leases === 0 && connections === 0;
    }, 5000)).toBe(true);

    const held = fetch(new URL('again?wait=10', url), { signal: AbortSignal.timeout(10_000) });
    expect(await stillPending(held, 300)).toBe('pending');
    const published = await fetch(new URL('again', url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'back' }),
      signal: AbortSignal.timeout(5000),
    });
    expect(published.status).toBe(201);
    const answer = await held;
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { messages: { data: unknown }[] }).messages.map((m) => m.data)).toEqual([{ text: 'back' }]);

    expect(server.exitCode).toBeNull();
    expect(stderr).toBe('');
  });
});
