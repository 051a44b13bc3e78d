// PostgresEngine benchmark, side by side with RedisEngine and MemoryEngine in one run: publish
// throughput, and cross-instance latency (publish on broker A → a poll held on broker B
// receives it; for PostgreSQL the wake-up travels by NOTIFY).
//
//   npm run build && node bench/postgres.js
//
// PostgreSQL: DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres (tables with a
// prefix of their own, dropped at the end). Redis: starts its own redis-server (no
// persistence) on a free port when one is installed, else its rows are left out. Every phase is
// bounded in time.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Broker, MemoryEngine } from 'longpoll-kit';
import { PostgresEngine } from 'longpoll-kit/postgres';
import { RedisEngine } from 'longpoll-kit/redis';

const PHASE_MS = Number(process.env.PHASE_MS ?? 2_000);
const ROUNDS = Number(process.env.ROUNDS ?? 500);
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const prefix = `bench_${process.pid}`;

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A redis-server of our own, or undefined when none is installed. */
async function startRedis() {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) return undefined;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'longpoll-bench-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const stop = () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stop);
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { retryStrategy: () => 50 });
  probe.on('error', () => {});
  try {
    await Promise.race([
      new Promise((resolve) => probe.once('ready', resolve)),
      new Promise((_, reject) => setTimeout(() => reject(new Error('redis-server did not start within 10 s')), 10_000).unref()),
    ]);
  } finally {
    probe.disconnect();
  }
  return { url, stop };
}

/** Publishes for PHASE_MS with `concurrency` publishes in flight over 100 channels. */
async function throughput(broker, concurrency) {
  const payload = { text: 'x'.repeat(100) };
  let count = 0;
  const deadline = performance.now() + PHASE_MS;
  const worker = async (w) => {
    for (let n = 0; performance.now() < deadline; n++) {
      await broker.publish(`bench:${(w * 7 + n) % 100}`, payload);
      count++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  return count / ((performance.now() - started) / 1000);
}

/** Publish on A → receipt by a poll held on B, ROUNDS times (bounded by 20 s). */
async function crossInstance(a, b) {
  const channel = 'bench:latency';
  let { cursor } = await b.read(channel);
  const samples = [];
  const deadline = performance.now() + 20_000;
  for (let round = 0; round < ROUNDS && performance.now() < deadline; round++) {
    const held = b.poll(channel, { cursor, wait: 5_000 });
    const holdBy = performance.now() + 1_000;
    while (b.stats().waiters === 0 && performance.now() < holdBy) await new Promise((resolve) => setImmediate(resolve));
    const sent = performance.now();
    await a.publish(channel, { round });
    const result = await held;
    samples.push(performance.now() - sent);
    cursor = result.cursor;
  }
  samples.sort((x, y) => x - y);
  const at = (p) => samples[Math.min(samples.length - 1, Math.ceil(p * samples.length) - 1)];
  return { rounds: samples.length, median: at(0.5), p99: at(0.99) };
}

const redisServer = await startRedis();
const pools = [];
const clients = [];
const brokers = [];
const pgPool = () => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 20 });
  pool.on('error', () => {});
  pools.push(pool);
  return pool;
};
const redisClient = () => {
  const redis = new Redis(redisServer.url, { enableOfflineQueue: true, maxRetriesPerRequest: 0 });
  clients.push(redis);
  return redis;
};
const broker = (engine) => {
  const made = new Broker({ engine });
  brokers.push(made);
  return made;
};
try {
  await new PostgresEngine({ pool: pgPool(), prefix }).migrate();
  const rows = [];
  for (const concurrency of [1, 64]) {
    rows.push(['MemoryEngine', concurrency, await throughput(broker(new MemoryEngine()), concurrency)]);
    if (redisServer) rows.push(['RedisEngine', concurrency, await throughput(broker(new RedisEngine({ redis: redisClient(), prefix: `${prefix}:` })), concurrency)]);
    rows.push(['PostgresEngine', concurrency, await throughput(broker(new PostgresEngine({ pool: pgPool(), prefix })), concurrency)]);
  }
  const latencies = [];
  if (redisServer) {
    const [a, b] = [broker(new RedisEngine({ redis: redisClient(), prefix: `${prefix}:` })), broker(new RedisEngine({ redis: redisClient(), prefix: `${prefix}:` }))];
    await new Promise((resolve) => setTimeout(resolve, 300)); // b listens
    latencies.push(['RedisEngine', await crossInstance(a, b)]);
  }
  const [a, b] = [broker(new PostgresEngine({ pool: pgPool(), prefix })), broker(new PostgresEngine({ pool: pgPool(), prefix }))];
  await new Promise((resolve) => setTimeout(resolve, 300)); // b listens
  latencies.push(['PostgresEngine', await crossInstance(a, b)]);

  console.log(`\nPublish throughput (${PHASE_MS} ms per row, 100 channels, 100-byte payload, loopback; PostgreSQL with its own settings, Redis without persistence)\n`);
  console.log('| engine         | in flight | publishes/s |');
  console.log('| -------------- | --------: | ----------: |');
  for (const [engine, concurrency, rate] of rows) {
    console.log(`| ${engine.padEnd(14)} | ${String(concurrency).padStart(9)} | ${Math.round(rate).toLocaleString('en-US').padStart(11)} |`);
  }
  console.log(`\nCross-instance latency (publish on broker A → poll held on broker B answered)\n`);
  console.log('| engine         | rounds | median   | p99      |');
  console.log('| -------------- | -----: | -------: | -------: |');
  for (const [engine, latency] of latencies) {
    console.log(`| ${engine.padEnd(14)} | ${String(latency.rounds).padStart(6)} | ${latency.median.toFixed(2).padStart(5)} ms | ${latency.p99.toFixed(2).padStart(5)} ms |`);
  }
} catch (error) {
  console.error('bench/postgres.js failed:', error);
  process.exitCode = 1;
} finally {
  await Promise.race([Promise.all(brokers.map((made) => made.close())), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
  for (const redis of clients) redis.disconnect();
  const admin = pools[0];
  if (admin) {
    await admin.query(`DROP TABLE IF EXISTS ${prefix}_messages, ${prefix}_channels, ${prefix}_settings CASCADE`).catch(() => {});
    const { rows } = await admin
      .query(`SELECT p.oid::regprocedure::text AS signature FROM pg_proc p WHERE p.proname LIKE $1`, [`${prefix}\\_%`])
      .catch(() => ({ rows: [] }));
    for (const { signature } of rows) await admin.query(`DROP FUNCTION IF EXISTS ${signature} CASCADE`).catch(() => {});
  }
  await Promise.all(pools.map((pool) => pool.end()));
  redisServer?.stop();
}
