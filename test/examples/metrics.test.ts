import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExample, type RunningExample } from '../support/example-process.js';
import { eventually, heldPollReceivesPublish, stillPending } from './held-poll.js';

// Runs the example as a user would, against the built package (dist/).
let example: RunningExample;
beforeAll(async () => {
  example = await startExample('examples/metrics/server.js');
});
afterAll(async () => {
  await example?.stop();
});

/** The value of one sample of the Prometheus text format, e.g. `metric('x_total', 'limit="client"')`. */
async function scrape(): Promise<(name: string, labels?: string) => number> {
  const answer = await fetch(new URL('/metrics', example.url), { signal: AbortSignal.timeout(5000) });
  expect(answer.status).toBe(200);
  expect(answer.headers.get('content-type')).toMatch(/^text\/plain/);
  const text = await answer.text();
  return (name, labels) => {
    const line = text.split('\n').find((l) => l.startsWith(labels ? `${name}{${labels}} ` : `${name} `));
    return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
}

const channel = (name: string, query = '') => new URL(`/channels/${name}${query}`, example.url);

describe('examples/metrics (prom-client)', () => {
  it('serves /metrics next to the channels, starting from zero', async () => {
    expect(example.url.pathname).toBe('/metrics');
    const metric = await scrape();
    expect(metric('longpoll_messages_published_total')).toBe(0);
    expect(metric('longpoll_held_polls')).toBe(0);
    expect(metric('process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0);
  });

  it('answers paths that are neither with a problem+json 404', async () => {
    const lost = await fetch(new URL('/nowhere', example.url), { signal: AbortSignal.timeout(5000) });
    expect(lost.status).toBe(404);
    expect(lost.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('counts a publish and the held poll it answered', async () => {
    await heldPollReceivesPublish(channel('demo').href);
    const metric = await scrape();
    expect(metric('longpoll_messages_published_total')).toBe(1);
    expect(metric('longpoll_deliveries_total')).toBe(1);
    expect(metric('longpoll_polls_answered_total')).toBe(1);
    expect(metric('longpoll_messages_delivered_total')).toBe(1);
    expect(metric('longpoll_history_messages')).toBe(1);
    expect(metric('longpoll_channels')).toBe(1);
  });

  it('shows held polls and leases while they are held, and timeouts after', async () => {
    const held = fetch(channel('quiet', '?wait=2'), { signal: AbortSignal.timeout(10_000) });
    let during = await scrape();
    expect(await eventually(async () => (during = await scrape())('longpoll_held_polls') === 1)).toBe(true);
    expect(await stillPending(held, 0)).toBe('pending');
    expect(during('longpoll_leases')).toBe(1);
    expect(during('longpoll_lease_clients')).toBe(1);

    const answer = await held;
    expect(await answer.json()).toMatchObject({ timedOut: true });
    const after = await scrape();
    expect(after('longpoll_poll_timeouts_total')).toBe(1);
    expect(after('longpoll_held_polls')).toBe(0);
    expect(after('longpoll_leases')).toBe(0);
  });

  it('counts refusals by the limiter under the cap that refused', async () => {
    const clients = Array.from({ length: 6 }, () => new AbortController());
    const held = clients.map((client, n) => fetch(channel(`busy-${n}`, '?wait=20'), { signal: client.signal }).catch(() => undefined));
    try {
      expect(await eventually(async () => (await scrape())('longpoll_held_polls') === 6)).toBe(true);
      const refused = await fetch(channel('busy-6', '?wait=20'), { signal: AbortSignal.timeout(5000) });
      expect(refused.status).toBe(429);
      await refused.body?.cancel();
      const metric = await scrape();
      expect(metric('longpoll_limit_refusals_total', 'limit="client"')).toBe(1);
      expect(metric('longpoll_held_polls')).toBe(6);
    } finally {
      for (const client of clients) client.abort();
      await Promise.all(held);
    }
  });

  it('stops cleanly on SIGTERM', async () => {
    await example.stop();
    expect(example.child.exitCode).toBe(0);
  });
});
