import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExample, type RunningExample } from '../support/example-process.js';
import { heldPollReceivesPublish, stillPending } from './held-poll.js';

// Runs the example as a user would, against the built package (dist/).
let example: RunningExample;
beforeAll(async () => {
  example = await startExample('examples/fetch/server.js');
});
afterAll(async () => {
  await example?.stop();
});

/** The example's limiter allows 6 held polls per client (ConnectionLimiter's default). */
const PER_CLIENT = 6;

describe('examples/fetch (the fetch adapter on a node:http bridge)', () => {
  it('prints a channel URL where a held poll receives a published message', async () => {
    expect(example.url.pathname).toBe('/channels/demo');
    await heldPollReceivesPublish(example.url.href);
  });

  it('passes the client address, so the per-client cap applies, and frees a lease when its client goes away', async () => {
    const channel = (n: number) => new URL(`/channels/cap-${n}?wait=20`, example.url);
    const clients = Array.from({ length: PER_CLIENT }, () => new AbortController());
    const held = clients.map((client, n) => fetch(channel(n), { signal: client.signal }).catch(() => undefined));
    try {
      expect(await stillPending(Promise.race(held), 300)).toBe('pending');

      // Without info.remoteAddr the fetch adapter has no client key and this would be held.
      const refused = await fetch(channel(PER_CLIENT), { signal: AbortSignal.timeout(5000) });
      expect(refused.status).toBe(429);
      expect(await refused.json()).toMatchObject({ code: 'limit_exceeded', limit: 'client' });
    } finally {
      for (const client of clients) client.abort();
      await Promise.all(held);
    }

    // The bridge aborts the Request's signal on disconnect, so the leases come back: a new
    // poll is held again (bounded retries while the server notices the closed sockets).
    let status = 0;
    for (let attempt = 0; attempt < 20; attempt++) {
      const answer = await fetch(new URL('/channels/cap-again?wait=0', example.url), { signal: AbortSignal.timeout(5000) });
      status = answer.status;
      await answer.body?.cancel();
      if (status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status).toBe(200);
  });

  it('stops cleanly on SIGTERM', async () => {
    await example.stop();
    expect(example.child.exitCode).toBe(0);
  });
});
