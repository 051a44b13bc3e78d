import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExample, type RunningExample } from '../support/example-process.js';
import { stillPending, type PollBody } from './held-poll.js';

/** How long a job of the example runs in these tests. */
const JOB_MS = 1000;

interface Accepted {
  readonly id: string;
  readonly channel: string;
  readonly cursor: string;
  readonly poll: string;
}

// Runs the example as a user would, against the built package (dist/).
let example: RunningExample;
beforeAll(async () => {
  example = await startExample('examples/jobs/server.js', { JOB_MS: String(JOB_MS) });
});
afterAll(async () => {
  await example?.stop();
});

async function startJob(): Promise<Accepted> {
  const answer = await fetch(new URL('/jobs', example.url), { method: 'POST', signal: AbortSignal.timeout(5000) });
  expect(answer.status).toBe(202);
  const accepted = (await answer.json()) as Accepted;
  expect(answer.headers.get('location')).toBe(accepted.poll);
  return accepted;
}

describe('examples/jobs (Koa, the async-job pattern)', () => {
  it('answers POST /jobs with 202, the job id and where to poll', async () => {
    const accepted = await startJob();
    expect(accepted.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(accepted.channel).toBe(`job:${accepted.id}`);
    expect(new URL(accepted.poll, example.url).pathname).toBe(`/channels/${encodeURIComponent(accepted.channel)}`);
  });

  it('holds the poll on the job channel until the job completes, then answers with the completion', async () => {
    const { id, channel, poll } = await startJob();
    const answer = fetch(new URL(poll, example.url), { signal: AbortSignal.timeout(JOB_MS + 10_000) });
    expect(await stillPending(answer, JOB_MS / 2)).toBe('pending');

    const done = await answer;
    expect(done.status).toBe(200);
    const body = (await done.json()) as PollBody;
    expect(body.timedOut).toBe(false);
    expect(body.messages).toHaveLength(1);
    expect(body.messages[0]).toMatchObject({ channel, data: { id, status: 'done' } });
  });

  it('still delivers a completion that happened before the first poll (the cursor predates the job)', async () => {
    const { id, poll } = await startJob();
    await new Promise((resolve) => setTimeout(resolve, JOB_MS + 500));

    const done = await fetch(new URL(poll, example.url), { signal: AbortSignal.timeout(5000) });
    expect(done.status).toBe(200);
    const body = (await done.json()) as PollBody;
    expect(body.messages.map((m) => m.data)).toEqual([expect.objectContaining({ id, status: 'done' })]);
  });

  it('lets clients poll job channels only, and not publish on them', async () => {
    const other = await fetch(new URL('/channels/news?wait=0', example.url), { signal: AbortSignal.timeout(5000) });
    expect(other.status).toBe(403);
    const { poll } = await startJob();
    const forged = await fetch(new URL(poll, example.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"status":"done"}',
      signal: AbortSignal.timeout(5000),
    });
    expect(forged.status).toBe(405);
  });

  it('answers other methods and paths with a problem+json 405 or 404', async () => {
    const listed = await fetch(new URL('/jobs', example.url), { signal: AbortSignal.timeout(5000) });
    expect(listed.status).toBe(405);
    expect(listed.headers.get('allow')).toBe('POST');
    expect(listed.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await listed.json()).toMatchObject({ status: 405 });
    const lost = await fetch(new URL('/nowhere', example.url), { signal: AbortSignal.timeout(5000) });
    expect(lost.status).toBe(404);
    expect(lost.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('stops cleanly on SIGTERM, with jobs still running', async () => {
    await startJob();
    await example.stop();
    expect(example.child.exitCode).toBe(0);
  });
});
