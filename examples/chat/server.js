// `npm start`: a chat where browser tabs talk through long polling. Express 5 serves one static
// page and mounts the channels; the page loads longpoll-kit/client from the built package
// (dist/) as a plain ES module, with no bundler. History lives in the embedded MemoryEngine, or,
// when DATABASE_URL is set, in PostgreSQL (PostgresEngine): then it outlives a restart, and
// several instances behind a load balancer serve the same rooms.
//
// A room has two channels: its lines (chat:lobby) and its presence (presence:lobby), where each
// open tab says "I am here" every 20 s. The page follows both with ONE held poll, so a second
// channel costs no second connection (a browser has about six per host, shared by every tab).
//
//   GET  /channels?channels=chat:lobby,presence:lobby&cursor=…   the page's one held poll
//   POST /channels/chat:lobby            publishes a line, a JSON body { name, text }
//   POST /channels/presence:lobby        says who is here, a JSON body { name }
//   GET  /channels/chat:lobby?cursor=…   one channel alone (curl)
//   GET  /lib/…                          the package's dist/, for the browser
//
// Anyone who can reach it may post, so it is shaped to survive that: only the chat's own rooms
// exist, every client has a request rate and slower publish rates, history has a byte budget,
// and SIGTERM stops it within a second or so whatever the clients do.
//
// PORT picks the port (PORT=0: any free one); it listens on 127.0.0.1 only.
// DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/chat, keeps the history in PostgreSQL
// (`npm install pg`; the tables are made on start, prefixed `chat`).
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { Broker, ConnectionLimiter, MemoryEngine } from 'longpoll-kit';
import { longPoll } from 'longpoll-kit/express';

// The package resolves itself by name through its exports map: dist/client/index.js → dist/.
const dist = dirname(dirname(fileURLToPath(import.meta.resolve('longpoll-kit/client'))));
const page = fileURLToPath(new URL('public', import.meta.url));

/** The rooms there are, and their presence channels; a poll or a post anywhere else is a 403. */
const ROOMS = new Set(['chat:lobby']);
const PRESENCE = new Set(['presence:lobby']);

// The last 200 messages of the last hour per channel (a room's lines; its presence, of which
// the page needs only the last minute), and never more than 16 MiB of history in all, whatever
// the rooms become.
const history = { capacity: 200, maxAge: 60 * 60_000 };
const database = process.env.DATABASE_URL ? await postgres(process.env.DATABASE_URL) : undefined;
const broker = new Broker({ engine: database?.engine ?? new MemoryEngine({ ...history, maxBytes: 16 * 1024 * 1024 }) });

/** The history in PostgreSQL: loaded only when DATABASE_URL asks for it (pg is optional). */
async function postgres(connectionString) {
  const { default: pg } = await import('pg');
  const { PostgresEngine } = await import('longpoll-kit/postgres');
  const pool = new pg.Pool({ connectionString });
  pool.on('error', () => {}); // an idle connection that drops is replaced
  const engine = new PostgresEngine({ pool, prefix: 'chat', ...history });
  await engine.migrate();
  return { engine, pool };
}
// A browser opens at most 6 connections per host over HTTP/1.1: a few tabs of one user fit.
// Every request under /channels costs a token: 60 at once, then 6 a second, plenty for tabs that
// re-poll after each line, not enough for a loop of `wait=0` polls.
const limiter = new ConnectionLimiter({ perClient: 6, rate: { requests: 60, per: 10_000 } });
// Posting has a budget of its own, for people typing: 10 lines at once, then one every 2 s.
const posting = new ConnectionLimiter({ rate: { requests: 10, per: 20_000 } });
// Presence another, so that tabs saying they are here never spend the budget for lines: a tab
// says so every 20 s (3 a minute), and an address may keep 4 tabs going, 12 a minute.
const presence = new ConnectionLimiter({ rate: { requests: 12, per: 60_000 } });

/**
 * Rooms and their presence only (for a poll over many channels it is asked for each). A post
 * also spends from its client's budget for that kind of channel (429 with Retry-After when
 * empty).
 */
function authorize(req, { channel, action }) {
  const budget = ROOMS.has(channel) ? posting : PRESENCE.has(channel) ? presence : undefined;
  if (!budget) return false;
  if (action === 'publish') budget.charge(req.socket.remoteAddress);
  return true;
}

const app = express();
app.disable('x-powered-by');
app.use(express.static(page));
app.use('/lib', express.static(dist, { index: false }));
// The page escapes what it shows, so any small JSON body may be published. The page's poll is
// `GET /channels?channels=…`, which Express hands on as `/?channels=…`: the adapter serves both. A body has 10 s to
// arrive (the default `bodyTimeout`), an answer 30 s to be read (`sendTimeout`).
app.use('/channels', longPoll(broker, { limiter, authorize, publish: true, maxBodyBytes: 4096 }));

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', (error) => {
  if (error) throw error;
  const { port } = server.address();
  console.log(`longpoll-kit chat on http://127.0.0.1:${port}/ (open it in two tabs)`);
});

// Stop accepting, and answer held polls with 503 + Retry-After (the pages come back by
// themselves once a server is up again). Whatever still holds a connection a second later is a
// slow client (a body trickling in, an answer it does not read): drop it.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    server.close();
    void broker.close().then(() => database?.pool.end());
    setTimeout(() => server.closeAllConnections(), 1000).unref();
  });
}
