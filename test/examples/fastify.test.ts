import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExample, type RunningExample } from '../support/example-process.js';
import { heldPollReceivesPublish, stillPending } from './held-poll.js';

// Runs the example as a user would, against the built package (dist/).
let example: RunningExample;
beforeAll(async () => {
  example = await startExample('examples/fastify/server.js');
});
afterAll(async () => {
  await example?.stop();
});

/** A client that connected and sent half a request, and sends nothing more. */
async function slowClient(url: URL): Promise<Socket> {
  const socket = connect(Number(url.port), url.hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  socket.write(`POST /channels/slow HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":`);
  return socket;
}

describe('examples/fastify', () => {
  it('prints a channel URL where a held poll receives a published message', async () => {
    expect(example.url.pathname).toBe('/channels/demo');
    await heldPollReceivesPublish(example.url.href);
  });

  it('refuses a publish body over its 4 KiB limit with a 413 problem', async () => {
    const answer = await fetch(example.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify('x'.repeat(5_000)),
      signal: AbortSignal.timeout(5000),
    });
    expect(answer.status).toBe(413);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await answer.json()).toMatchObject({ code: 'payload_too_large' });
  });

  it('answers a held poll 503 shutting_down on SIGTERM and exits cleanly within seconds, slow clients connected', async () => {
    const slow = [await slowClient(example.url), await slowClient(example.url)];
    const held = fetch(new URL('/channels/closing?wait=20', example.url), { signal: AbortSignal.timeout(10_000) });
    expect(await stillPending(held, 500)).toBe('pending');
    const started = performance.now();
    await example.stop();
    expect(performance.now() - started).toBeLessThan(4_000);
    const answer = await held;
    expect(answer.status).toBe(503);
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await answer.json()).toMatchObject({ code: 'shutting_down' });
    expect(example.child.exitCode).toBe(0);
    for (const socket of slow) socket.destroy();
  });
});
