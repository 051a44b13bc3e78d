// Two longpoll-kit instances on one Redis, started by one command:
//
//   node examples/cluster/start.js                 # starts its own redis-server on a free port
//   REDIS_URL=redis://127.0.0.1:6379 node examples/cluster/start.js
//
// Publish through one instance and poll the other: they share one history, so a load balancer
// in front of them needs no sticky sessions. Ctrl-C stops everything this script started.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const here = new URL('.', import.meta.url).pathname;
const children = [];
let redisDir;
let stopping = false;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function answersPing(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

async function startRedis() {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('redis-server is not installed: install it, or set REDIS_URL to a running Redis');
  }
  const port = await freePort();
  redisDir = mkdtempSync(join(tmpdir(), 'longpoll-cluster-'));
  // AOF with fsync on every write: a crash loses nothing that was acknowledged.
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', redisDir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'];
  const redis = spawn('redis-server', args, { stdio: 'ignore' });
  children.push(redis);
  redis.once('exit', (code) => stop(`redis-server exited (${code})`));
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
    if (await answersPing(port)) return `redis://127.0.0.1:${port}`;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis-server did not answer on port ${port}`);
}

function startInstance(name, redisUrl, port) {
  const child = spawn(process.execPath, [join(here, 'instance.js')], {
    env: { ...process.env, NAME: name, REDIS_URL: redisUrl, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  child.once('exit', (code, signal) => stop(`${name} exited (${code ?? signal})`));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} printed no URL within 10 s`)), 10_000);
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
      const match = /http:\/\/\S+/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[0]);
      }
    });
  });
}

function stop(reason) {
  if (stopping) return;
  stopping = true;
  if (reason) console.error(`stopping: ${reason}`);
  const running = children.filter((child) => child.exitCode === null && child.signalCode === null);
  let left = running.length;
  const finish = () => {
    if (redisDir) rmSync(redisDir, { recursive: true, force: true });
    process.exit(reason ? 1 : 0);
  };
  if (left === 0) finish();
  for (const child of running) {
    child.once('exit', () => --left === 0 && finish());
    child.kill('SIGTERM');
  }
  setTimeout(() => {
    for (const child of running) child.kill('SIGKILL');
  }, 5_000).unref();
}

for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => stop());

try {
  const redisUrl = process.env.REDIS_URL || (await startRedis());
  console.log(`redis on ${redisUrl}`);
  const base = Number(process.env.PORT ?? 0);
  const [a, b] = await Promise.all([startInstance('a', redisUrl, base), startInstance('b', redisUrl, base && base + 1)]);
  console.log(`
Two instances, one history:
  poll on a:      curl '${a}demo?wait=25'
  publish on b:   curl -X POST -H 'content-type: application/json' -d '{"text":"hi"}' '${b}demo'
Ctrl-C stops both instances${process.env.REDIS_URL ? '' : ' and redis-server'}.`);
} catch (error) {
  console.error(error.message);
  stop(error.message);
}
