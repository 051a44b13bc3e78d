import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExample, type RunningExample } from '../support/example-process.js';
import { heldPollReceivesPublish, stillPending } from './held-poll.js';

// Runs the example as a user would, against the built package (dist/).
let example: RunningExample;
beforeAll(async () => {
  example = await startExample('examples/node-http/server.js');
});
afterAll(async () => {
  await example?.stop();
});

describe('examples/node-http', () => {
  it('prints a channel URL where a held poll receives a published message', async () => {
    expect(example.url.pathname).toBe('/channels/demo');
    await heldPollReceivesPublish(example.url.href);
  });

  it('answers outside its prefix with a 404 problem', async () => {
    const answer = await fetch(new URL('/elsewhere', example.url), { signal: AbortSignal.timeout(5000) });
    expect(answer.status).toBe(404);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('answers a held poll 503 shutting_down on SIGTERM, then exits cleanly', async () => {
    const held = fetch(new URL('/channels/closing?wait=20', example.url), { signal: AbortSignal.timeout(10_000) });
    expect(await stillPending(held, 500)).toBe('pending');
    await example.stop();
    const answer = await held;
    expect(answer.status).toBe(503);
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await answer.json()).toMatchObject({ code: 'shutting_down' });
    expect(example.child.exitCode).toBe(0);
  });
});
