import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExample, type RunningExample } from '../support/example-process.js';
import { eventually, heldPollReceivesPublish, stillPending } from './held-poll.js';

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
      // Without info.remoteAddr the fetch adapter has no client key, and this would never be
      // refused. (Probed with wait=0 until all six held polls have reached the server.)
      let refused: Response | undefined;
      const probe = async () => {
        refused = await fetch(new URL('/channels/probe?wait=0', example.url), { signal: AbortSignal.timeout(5000) });
        if (refused.status === 429) return true;
        await refused.body?.cancel();
        return false;
      };
      expect(await eventually(probe)).toBe(true);
      expect(await refused!.json()).toMatchObject({ code: 'limit_exceeded', limit: 'client' });
      expect(await stillPending(Promise.race(held), 0)).toBe('pending');
    } finally {
      for (const client of clients) client.abort();
      await Promise.all(held);
    }

    // The bridge aborts the Request's signal on disconnect, so the leases come back and a poll
    // is answered again (bounded, while the server notices the closed sockets).
    const answered = async () => {
      const answer = await fetch(new URL('/channels/probe?wait=0', example.url), { signal: AbortSignal.timeout(5000) });
      await answer.body?.cancel();
      return answer.status === 200;
    };
    expect(await eventually(answered, 2000)).toBe(true);
  });

  it('answers a request it cannot turn into a fetch Request with a 400 problem, not a crash', async () => {
    // fetch() cannot send a malformed Host header; node:http can.
    const answer = await new Promise<{ status: number | undefined; type: string | undefined }>((resolve, reject) => {
      const sent = request(new URL('/channels/demo?wait=0', example.url), { headers: { host: '[not a host' }, timeout: 5000 }, (res) => {
        res.resume();
        resolve({ status: res.statusCode, type: res.headers['content-type'] });
      });
      sent.once('timeout', () => sent.destroy(new Error('no answer within 5 s')));
      sent.once('error', reject);
      sent.end();
    });
    expect(answer).toEqual({ status: 400, type: 'application/problem+json' });
    await heldPollReceivesPublish(new URL('/channels/after-bad-host', example.url).href);
  });

  it('stops cleanly on SIGTERM', async () => {
    await example.stop();
    expect(example.child.exitCode).toBe(0);
  });
});
