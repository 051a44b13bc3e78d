// RedisEngine benchmark: publish throughput (RedisEngine vs MemoryEngine, same run) and
// cross-instance latency (publish on broker A → a poll held on broker B receives it).
//
//   npm run build && node bench/redis.js        # REDIS_URL=… to use a running Redis instead
//
// Starts its own redis-server (no persistence) on a free port in a temporary directory and
// stops it at the end. Every phase is bounded in time.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Broker, MemoryEngine } from 'longpoll-kit';
import { RedisEngine } from 'longpoll-kit/redis';

const PHASE_MS = Number(process.env.PHASE_MS ?? 2_000);
const ROUNDS = Number(process.env.ROUNDS ?? 1_000);
const prefix = `bench-${process.pid}:`;

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'longpoll-bench-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const url = `redis://127.0.0.1:${port}`;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  // Never leave redis-server behind: not on a crash, an unhandled rejection or a signal.
  process.once('exit', stop);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      stop();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
  process.once('unhandledRejection', (reason) => {
    console.error('bench/redis.js:', reason);
    stop();
    process.exit(1);
  });
  // Retries until redis-server listens; bounded by 10 s, and never leaves the server behind.
  const probe = new Redis(url, { retryStrategy: () => 50 });
  probe.on('error', () => {});
  try {
    await Promise.race([
      new Promise((resolve) => probe.once('ready', resolve)),
      new Promise((_, reject) => setTimeout(() => reject(new Error('redis-server did not start within 10 s')), 10_000).unref()),
    ]);
  } catch (error) {
    stop();
    throw error;
  } finally {
    probe.disconnect();
  }
  return { url, stop };
}

function client(url) {
  return new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
}

async function ready(redis) {
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  return redis;
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
    // Until the poll is held (bounded: a poll that answered at once ends the spin too).
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

const external = process.env.REDIS_URL;
const server = external ? undefined : await startRedis();
const url = external ?? server.url;
const clients = [];
const brokers = [];
try {
  const rows = [];
  for (const concurrency of [1, 64]) {
    const memory = new Broker({ engine: new MemoryEngine() });
    brokers.push(memory);
    rows.push(['MemoryEngine', concurrency, await throughput(memory, concurrency)]);
    const redis = await ready(client(url));
    clients.push(redis);
    const viaRedis = new Broker({ engine: new RedisEngine({ redis, prefix }) });
    brokers.push(viaRedis);
    rows.push(['RedisEngine', concurrency, await throughput(viaRedis, concurrency)]);
  }
  const [ra, rb] = [await ready(client(url)), await ready(client(url))];
  clients.push(ra, rb);
  const a = new Broker({ engine: new RedisEngine({ redis: ra, prefix }) });
  const b = new Broker({ engine: new RedisEngine({ redis: rb, prefix }) });
  brokers.push(a, b);
  await new Promise((resolve) => setTimeout(resolve, 200)); // b's subscriber connects
  const latency = await crossInstance(a, b);

  console.log(`\nPublish throughput (${PHASE_MS} ms per row, 100 channels, 100-byte payload, Redis on loopback${external ? '' : ', no persistence'})\n`);
  console.log('| engine       | in flight | publishes/s |');
  console.log('| ------------ | --------: | ----------: |');
  for (const [engine, concurrency, rate] of rows) {
    console.log(`| ${engine.padEnd(12)} | ${String(concurrency).padStart(9)} | ${Math.round(rate).toLocaleString('en-US').padStart(11)} |`);
  }
  console.log(`\nCross-instance latency through Redis (publish on broker A → poll held on broker B answered), ${latency.rounds} rounds\n`);
  console.log('| median   | p99      |');
  console.log('| -------: | -------: |');
  console.log(`| ${latency.median.toFixed(2).padStart(5)} ms | ${latency.p99.toFixed(2).padStart(5)} ms |`);
} catch (error) {
  console.error('bench/redis.js failed:', error);
  process.exitCode = 1;
} finally {
  await Promise.race([Promise.all(brokers.map((broker) => broker.close())), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
  for (const redis of clients) redis.disconnect();
  server?.stop();
}
