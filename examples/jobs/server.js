// The async-job pattern on Koa: `POST /jobs` starts a job and answers 202 at once; the client
// long-polls the job's channel and is answered the moment the job completes.
//
//   curl -X POST http://127.0.0.1:3000/jobs
//     → 202 {"id":"…","channel":"job:…","cursor":"…","poll":"/channels/job:…?cursor=…"}
//   curl 'http://127.0.0.1:3000/channels/job:…?cursor=…'   held until the job is done
//
// JOB_MS sets how long a job takes (default 2000 ms); PORT the port (PORT=0: a free one).
// DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/jobs; `npm install pg`) keeps the
// history in PostgreSQL, and a job's result is stored and published in one transaction: the
// completion exists, and wakes the polls, if and only if the result was stored.
import { randomUUID } from 'node:crypto';
import Koa from 'koa';
import { Broker, ConnectionLimiter } from 'longpoll-kit';
import { longPoll } from 'longpoll-kit/koa';

const JOB_MS = Number(process.env.JOB_MS ?? 2000);
const PREFIX = '/channels';

const database = process.env.DATABASE_URL ? await postgres(process.env.DATABASE_URL) : undefined;
const broker = database ? new Broker({ engine: database.engine }) : new Broker({ capacity: 10, maxAge: 300_000 });
const running = new Set();

/** PostgreSQL for the history and the jobs table: loaded only when DATABASE_URL asks for it. */
async function postgres(connectionString) {
  const { default: pg } = await import('pg');
  const { PostgresEngine } = await import('longpoll-kit/postgres');
  const pool = new pg.Pool({ connectionString });
  pool.on('error', () => {}); // an idle connection that drops is replaced
  const engine = new PostgresEngine({ pool, prefix: 'jobs_events', capacity: 10, maxAge: 300_000 });
  await engine.migrate();
  await pool.query('CREATE TABLE IF NOT EXISTS jobs (id uuid PRIMARY KEY, status text NOT NULL, result jsonb NOT NULL)');
  return { engine, pool };
}

/** Stores the job's result and publishes its completion in one transaction. */
async function complete(id, channel, result) {
  if (!database) return broker.publish(channel, result);
  const client = await database.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('INSERT INTO jobs (id, status, result) VALUES ($1, $2, $3)', [id, result.status, result]);
    // Visible to subscribers when, and only when, this transaction commits.
    await database.engine.publishWith(client, channel, result);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/** Stands in for real work (a report, an export, a video): it finishes after JOB_MS. */
function runJob(id, channel) {
  const timer = setTimeout(() => {
    running.delete(timer);
    const result = { id, status: 'done', finishedAt: new Date().toISOString() };
    complete(id, channel, result).catch((error) => console.error(`job ${id}: could not store and publish its completion`, error));
  }, JOB_MS);
  running.add(timer);
}

const app = new Koa();

/** Errors of this app's own routes, in the same problem+json shape as the channels'. */
function problem(ctx, status, title, detail) {
  ctx.status = status;
  ctx.type = 'application/problem+json';
  ctx.body = { type: 'about:blank', title, status, detail };
}

app.use(async (ctx, next) => {
  if (ctx.path !== '/jobs') return next();
  if (ctx.method !== 'POST') {
    ctx.set('Allow', 'POST');
    return problem(ctx, 405, 'Method Not Allowed', 'Start a job with POST /jobs');
  }
  const id = randomUUID();
  const channel = `job:${id}`;
  // The cursor is taken before the job starts, so a job that finishes before the client's
  // first poll is still delivered: the poll returns the completion at once instead of
  // waiting for a message that was already published.
  const { cursor } = await broker.read(channel);
  runJob(id, channel);
  const poll = `${PREFIX}/${encodeURIComponent(channel)}?cursor=${encodeURIComponent(cursor)}`;
  ctx.status = 202;
  ctx.set('Location', poll);
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { id, channel, cursor, poll };
});

app.use(
  longPoll(broker, {
    prefix: PREFIX,
    limiter: new ConnectionLimiter({ perClient: 6 }),
    // Only the server publishes (`publish` is off), and clients may poll job channels only.
    // The id is a random UUID: knowing a channel means having started the job, or being told.
    authorize: (_ctx, { channel }) => channel.startsWith('job:'),
  }),
);

app.use(async (ctx) => problem(ctx, 404, 'Not Found', 'Start a job with POST /jobs, then poll the URL it answers with'));

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`longpoll-kit jobs example on http://127.0.0.1:${port}/jobs`);
  console.log(`  start a job: curl -X POST 'http://127.0.0.1:${port}/jobs'`);
  console.log(`  then poll the "poll" URL it answers with until the job is done`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const timer of running) clearTimeout(timer);
    // Stop accepting, and answer held polls with 503 shutting_down. Whatever still holds a
    // connection a second later is a slow client (a body trickling in, an answer it does not
    // read), which server.close() would wait for: drop it.
    server.close();
    void broker.close().then(() => database?.pool.end());
    setTimeout(() => server.closeAllConnections(), 1000).unref();
  });
}
