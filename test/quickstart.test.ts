import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stillPending } from './examples/held-poll.js';
import { startExample, type RunningExample } from './support/example-process.js';
import { rawConnection } from './support/slow-clients.js';

const TEN_MB = 10 * 1024 * 1024;

// The core wired by hand, run against the built package (dist/, built by `npm install`).
let server: RunningExample;
beforeAll(async () => {
  server = await startExample('examples/quickstart/server.js');
});
afterAll(async () => {
  await server?.stop();
});

describe('examples/quickstart', () => {
  it('prints a URL where a held poll receives a published message', async () => {
    const url = server.url;
    const held = fetch(url, { signal: AbortSignal.timeout(10_000) });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const published = await fetch(url, { method: 'POST', body: JSON.stringify({ text: 'hi' }), signal: AbortSignal.timeout(5000) });
    expect(published.status).toBe(201);
    const answer = await held;
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { messages: { data: unknown }[]; cursor: string };
    expect(body.messages.map((m) => m.data)).toEqual([{ text: 'hi' }]);
    const stale = await fetch(`${url}?cursor=garbage`, { signal: AbortSignal.timeout(5000) });
    expect(stale.status).toBe(400);
    expect(await stale.json()).toMatchObject({ code: 'invalid_cursor' });
  });

  it('refuses a 10 MB body announced by Content-Length with 413 before reading any of it, and closes the connection', async () => {
    const post = await rawConnection(server.url, `POST /channels/demo HTTP/1.1\r\nHost: x\r\nContent-Length: ${TEN_MB}\r\n\r\n`);
    // Not a byte of the body is sent: the answer comes from the headers alone.
    expect(await stillPending(post.status, 2000)).toBe('settled');
    expect(await post.status).toBe(413);
    expect(post.received()).toMatch(/\r\nconnection: close\r\n/i);
    expect(post.received()).toContain('"code":"payload_too_large"');
    expect(await stillPending(post.closed, 2000)).toBe('settled');
  });

  it('refuses a 10 MB chunked body with 413 once it passes 64 KiB, without waiting for the rest', async () => {
    const post = await rawConnection(server.url, `POST /channels/demo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const chunk = 'x'.repeat(64 * 1024);
    const frame = `${chunk.length.toString(16)}\r\n${chunk}\r\n`;
    let sent = 0;
    let answered = false;
    void post.status.then(() => (answered = true));
    // Valid JSON when complete (a string of x), sent as fast as the server reads it.
    post.socket.write(`1\r\n"\r\n`);
    while (sent < TEN_MB && !answered && !post.socket.destroyed) {
      if (!post.socket.write(frame)) await new Promise((resolve) => post.socket.once('drain', resolve).once('close', resolve));
      sent += chunk.length;
    }
    if (sent >= TEN_MB && !answered) post.socket.write(`1\r\n"\r\n0\r\n\r\n`);
    expect(await post.status).toBe(413);
    expect(sent).toBeLessThan(TEN_MB);
    expect(await stillPending(post.closed, 3000)).toBe('settled');
  });

  it('stops cleanly on SIGTERM', async () => {
    await server.stop();
    expect(server.child.exitCode).toBe(0);
  });
});
