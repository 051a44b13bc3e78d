// A Fastify app whose onRequest hook copies `?name=` into a reply header, and hostile clients
// that name a character Node refuses in a header (U+2028): polls answered at once, held (in one
// group with a good poll, then woken by a publish), timed out, and event streams, N rounds.
// Counts what each got, the good polls that missed their wake-up, and what escaped to the
// process (uncaught exceptions, unhandled rejections); leases and waiters must end at 0.
// Usage: node test/attack/fastify-hook-header.mjs [rounds=20] [fastify|fastify4]
import fastify5 from 'fastify';
import fastify4 from 'fastify4';
import { Broker, ConnectionLimiter } from '../../dist/index.js';
import { fastifyLongPoll } from '../../dist/adapters/fastify.js';

const rounds = Number(process.argv[2] ?? 20);
const major = process.argv[3] ?? 'fastify';
const escaped = [];
process.on('uncaughtException', (error) => escaped.push(`uncaught ${error.code ?? error.message}`));
process.on('unhandledRejection', (error) => escaped.push(`unhandled ${error?.code ?? error}`));

const broker = new Broker();
const limiter = new ConnectionLimiter({ perClient: 100 });
const app = (major === 'fastify4' ? fastify4 : fastify5)();
app.addHook('onRequest', async (request, reply) => {
  if (request.query.name !== undefined) reply.header('x-name', request.query.name);
});
await app.register(fastifyLongPoll, { broker, prefix: '/channels', limiter });
await app.listen({ port: 0, host: '127.0.0.1' });
const base = `http://127.0.0.1:${app.server.address().port}/channels/hook`;
const bad = `name=${encodeURIComponent('\u2028')}`;
const get = (query, headers = {}) =>
  fetch(`${base}?${query}`, { headers, signal: AbortSignal.timeout(3_000) }).then(
    async (response) => ({ status: response.status, body: await response.text() }),
    () => ({ status: 'no answer' }),
  );
const tally = {};
const count = (what, answer) => {
  const key = `${what} ${answer.status}`;
  tally[key] = (tally[key] ?? 0) + 1;
};
let missed = 0;
for (let i = 0; i < rounds; i++) {
  const { cursor } = await broker.publish('hook', i);
  count('at once', await get(`${bad}&wait=0`));
  const q = `cursor=${encodeURIComponent(cursor)}&wait=1`;
  const heldBad = get(`${bad}&${q}`);
  const heldGood = get(`name=ok&${q}`);
  while (broker.stats().waiters < 2) await new Promise((resolve) => setTimeout(resolve, 2));
  await broker.publish('hook', `woken ${i}`);
  count('held', await heldBad);
  const good = await heldGood;
  if (good.status !== 200 || JSON.parse(good.body).timedOut) missed++;
  const { cursor: end } = await broker.read('hook', { cursor });
  count('timed out', await get(`${bad}&cursor=${encodeURIComponent(end)}&wait=0.1`));
  count('stream', await get(`${bad}&cursor=${encodeURIComponent(end)}`, { accept: 'text/event-stream' }));
}
await new Promise((resolve) => setTimeout(resolve, 200));
console.log(`${major}, ${rounds} rounds:`, tally);
console.log(`good polls that missed their wake-up: ${missed}; escaped to the process: ${escaped.length}`, [...new Set(escaped)]);
console.log('left:', { waiters: broker.stats().waiters, leases: limiter.stats().total });
await broker.close();
await app.close();
