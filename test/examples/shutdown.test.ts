import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExample, type RunningExample } from '../support/example-process.js';
import { redisAvailable, startRedis, type RedisServer } from '../support/redis-server.js';
import { nonReadingClient, rawGet, tricklingPost, type RawConnection } from '../support/slow-clients.js';
import { stillPending } from './held-poll.js';

/** How soon an example must be gone after SIGTERM, slow clients or not. */
const EXIT_WITHIN = 4000;

interface Case {
  readonly script: string;
  readonly env?: NodeJS.ProcessEnv;
  /** The path of a poll that is held (read the example's own instructions). */
  readonly heldPoll: (url: URL) => Promise<string>;
  /** Where a POST body is read, or at least accepted. */
  readonly post: string;
  /** What a client that reads nothing asks for, and how many times. */
  readonly unread: (url: URL) => Promise<{ path: string; count: number }>;
}

/** 60 KB messages published on `channel`, `count` of them. */
async function publishBulk(url: URL, channel: string, count: number): Promise<void> {
  const body = JSON.stringify({ text: 'x'.repeat(60_000) });
  for (let i = 0; i < count; i++) {
    const answer = await fetch(new URL(channel, url), { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(5000) });
    expect(answer.status).toBe(201);
  }
}

/**
 * Seven answers of 6 MB (a hundred 60 KB messages each): 42 MB, more than the kernel buffers of a
 * connection hold, so the server is left with answers it cannot write.
 */
async function bulkPolls(url: URL, query = '?wait=0&limit=100'): Promise<{ path: string; count: number }> {
  await publishBulk(url, '/channels/bulk', 100);
  return { path: `/channels/bulk${query}`, count: 7 };
}

/** A poll on `channel` from its current cursor, so that it is held. */
async function fromNow(url: URL, channel: string): Promise<string> {
  const answer = await fetch(new URL(`${channel}?wait=0`, url), { signal: AbortSignal.timeout(5000) });
  const { cursor } = (await answer.json()) as { cursor: string };
  return `${channel}?wait=20&cursor=${encodeURIComponent(cursor)}`;
}

const cases: Record<string, Case> = {
  chat: {
    script: 'examples/chat/server.js',
    heldPoll: (url) => fromNow(url, '/channels/chat:lobby'),
    post: '/channels/chat:lobby',
    // Its rooms take 4 KB lines at a slow rate; its biggest answer is a 17 KB file of the package.
    unread: () => Promise.resolve({ path: '/lib/broker.js', count: 2500 }),
  },
  // It takes no `wait`, and a poll of a channel without messages is held; without a cursor a
  // poll answers every message kept (a hundred at most).
  quickstart: {
    script: 'examples/quickstart/server.js',
    heldPoll: () => Promise.resolve('/channels/demo'),
    post: '/channels/demo',
    unread: (url) => bulkPolls(url, ''),
  },
  'node-http': { script: 'examples/node-http/server.js', heldPoll: (url) => fromNow(url, '/channels/demo'), post: '/channels/demo', unread: bulkPolls },
  fetch: { script: 'examples/fetch/server.js', heldPoll: (url) => fromNow(url, '/channels/demo'), post: '/channels/demo', unread: bulkPolls },
  metrics: { script: 'examples/metrics/server.js', heldPoll: (url) => fromNow(url, '/channels/demo'), post: '/channels/demo', unread: bulkPolls },
  jobs: {
    script: 'examples/jobs/server.js',
    env: { JOB_MS: '60000' },
    heldPoll: async (url) => {
      const started = await fetch(new URL('/jobs', url), { method: 'POST', signal: AbortSignal.timeout(5000) });
      return ((await started.json()) as { poll: string }).poll;
    },
    post: '/jobs',
    // Nothing it serves is big: the client's 2,000 small answers may all fit in the kernel's
    // buffers, leaving the server a connection that looks idle.
    unread: () => Promise.resolve({ path: '/no-such-page', count: 2000 }),
  },
  cluster: { script: 'examples/cluster/instance.js', heldPoll: (url) => fromNow(url, '/channels/demo'), post: '/channels/demo', unread: bulkPolls },
};

let redis: RedisServer | undefined;
const haveRedis = redisAvailable();
beforeAll(async () => {
  if (haveRedis) redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

describe.each(Object.entries(cases))('examples/%s on SIGTERM', (name, { script, env, heldPoll, post, unread }) => {
  let example: RunningExample | undefined;
  const slow: RawConnection[] = [];
  afterAll(async () => {
    for (const { socket } of slow) socket.destroy();
    await example?.stop();
  });

  it.skipIf(name === 'cluster' && !haveRedis)(`exits 0 within ${EXIT_WITHIN} ms with a held poll, a trickling body and a client that reads nothing`, async () => {
    example = await startExample(script, { ...env, ...(name === 'cluster' ? { REDIS_URL: redis!.url } : {}) });
    const { url } = example;

    const poll = await rawGet(url, await heldPoll(url));
    const body = await tricklingPost(url, post);
    const { path, count } = await unread(url);
    const deaf = await nonReadingClient(url, path, count);
    slow.push(poll, body);
    expect(await stillPending(poll.status, 300)).toBe('pending');
    expect(await stillPending(body.closed, 0)).toBe('pending');

    const exited = once(example.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const start = Date.now();
    example.child.kill('SIGTERM');
    const outcome = await Promise.race([exited, new Promise<'running'>((resolve) => setTimeout(resolve, EXIT_WITHIN, 'running'))]);
    deaf.destroy();
    expect(outcome, `still running ${EXIT_WITHIN} ms after SIGTERM`).toEqual([0, null]);
    expect(Date.now() - start).toBeLessThan(EXIT_WITHIN);
    // The held poll was answered before the connections were dropped: clients learn to come back.
    expect(await poll.status).toBe(503);
  });
});
