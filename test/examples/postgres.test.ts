/**
 * The chat and jobs examples with DATABASE_URL: history in PostgreSQL that outlives a restart,
 * and a job's result stored and published in one transaction. Each run uses a database of its
 * own on the shared PostgreSQL, dropped afterwards.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExample } from '../support/example-process.js';
import { postgresAvailable, SHARED_URL } from '../support/postgres-server.js';
import type { PollBody } from './held-poll.js';

const NAME = `examples_${process.pid}`;
const admin = () => new pg.Client({ connectionString: SHARED_URL.replace(/\/[^/]*$/, '/postgres') });
const DATABASE_URL = SHARED_URL.replace(/\/[^/]*$/, `/${NAME}`);

describe.runIf(postgresAvailable())('the examples on PostgreSQL (DATABASE_URL)', () => {
  beforeAll(async () => {
    const client = admin();
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS ${NAME}`);
    await client.query(`CREATE DATABASE ${NAME}`);
    await client.end();
  });

  afterAll(async () => {
    const client = admin();
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS ${NAME} WITH (FORCE)`);
    await client.end();
  });

  it('keeps the chat history across a restart of the chat', async () => {
    const first = await startExample('examples/chat/server.js', { DATABASE_URL });
    let cursor: string;
    try {
      const room = new URL('/channels/chat:lobby', first.url);
      const posted = await fetch(room, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'ada', text: 'kept' }),
        signal: AbortSignal.timeout(5000),
      });
      expect(posted.status).toBe(201);
      cursor = ((await posted.json()) as { cursor: string }).cursor;
    } finally {
      await first.stop();
    }
    const second = await startExample('examples/chat/server.js', { DATABASE_URL });
    try {
      const room = new URL('/channels/chat:lobby?wait=0', second.url);
      const body = (await (await fetch(room, { signal: AbortSignal.timeout(5000) })).json()) as PollBody;
      expect(body.messages.map((m) => m.data)).toEqual([{ name: 'ada', text: 'kept' }]);
      // A cursor from before the restart still resumes: a held poll gets the next line.
      const held = fetch(new URL(`/channels/chat:lobby?wait=10&cursor=${encodeURIComponent(cursor)}`, second.url), { signal: AbortSignal.timeout(15_000) });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await fetch(new URL('/channels/chat:lobby', second.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'bob', text: 'after' }),
        signal: AbortSignal.timeout(5000),
      });
      const next = (await (await held).json()) as PollBody;
      expect(next.messages.map((m) => m.data)).toEqual([{ name: 'bob', text: 'after' }]);
    } finally {
      await second.stop();
    }
  });

  it('stores a job result and publishes its completion in one transaction', async () => {
    const jobs = await startExample('examples/jobs/server.js', { DATABASE_URL, JOB_MS: '300' });
    try {
      const accepted = (await (await fetch(new URL('/jobs', jobs.url), { method: 'POST', signal: AbortSignal.timeout(5000) })).json()) as {
        id: string;
        poll: string;
      };
      const done = (await (await fetch(new URL(accepted.poll, jobs.url), { signal: AbortSignal.timeout(10_000) })).json()) as PollBody;
      expect(done.messages.map((m) => m.data)).toEqual([expect.objectContaining({ id: accepted.id, status: 'done' })]);
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      const { rows } = await client.query<{ status: string }>('SELECT status FROM jobs WHERE id = $1', [accepted.id]);
      await client.end();
      expect(rows).toEqual([{ status: 'done' }]);
    } finally {
      await jobs.stop();
    }
  });
});
