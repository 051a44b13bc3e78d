/**
 * One system under test in a fresh process: `node --expose-gc bench/server.js <system>`, run by
 * bench/run.js. It listens on 127.0.0.1 and answers the orchestrator over IPC: how many polls it
 * holds, its memory after a forced collection (never inside a timed window), publishing with a
 * timestamp and a CPU mark, and a steady stream of publishes.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { answerRequests } from './rpc.js';

const SYSTEMS = ['raw', 'kit', 'socket.io', 'faye', 'express-longpoll', 'raw-sse'];
const system = process.argv[2] ?? '';
if (!SYSTEMS.includes(system)) throw new Error(`Usage: server.js <${SYSTEMS.join('|')}>`);
const collect = globalThis.gc;
if (!collect) throw new Error('Run me with --expose-gc');

/** @type {{ server: import('node:http').Server, held: () => number, publish: (data: unknown) => unknown, publishOn?: (channel: string, data: unknown) => unknown }} */
const subject = await (await import(`./servers/${system}.js`)).start();
await new Promise((resolve, reject) => {
  subject.server.once('error', reject);
  subject.server.listen(0, '127.0.0.1', 4096, () => resolve(undefined));
});

// Exit normally on SIGTERM, so that `--cpu-prof` writes its profile.
process.on('SIGTERM', () => process.exit(0));

let sequence = 0;
/** About 100 bytes of JSON, the same for every system. */
const message = () => ({ text: 'The quick brown fox jumps over the lazy dog, again and again.', seq: sequence++ });
let cpuMark = process.cpuUsage();
/**
 * BENCH_PROFILE=<dir>: a CPU profile of each fanout window only (publish until the last
 * response), written as <dir>/<system>-<n>.cpuprofile. Profiling slows the server down: the
 * figures of such a run are not comparable.
 */
const profileDir = process.env.BENCH_PROFILE;
const inspector = profileDir ? new Session() : undefined;
inspector?.connect();
await inspector?.post('Profiler.enable');
await inspector?.post('Profiler.setSamplingInterval', { interval: 25 });
let profiles = 0;
let profiling = false;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {string} channel */
function publishOn(channel) {
  if (!subject.publishOn) throw new Error(`${system} cannot publish on a named channel`);
  return subject.publishOn(channel, message());
}

/** Resolves once `count` polls are held; looks after each event-loop turn that read a request. */
function heldAgain(count, deadline) {
  if (subject.held() >= count) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let scheduled = false;
    const check = () => {
      scheduled = false;
      if (subject.held() >= count) {
        subject.server.off('request', onRequest);
        clearInterval(timer);
        resolve(undefined);
      } else if (performance.now() > deadline) {
        subject.server.off('request', onRequest);
        clearInterval(timer);
        reject(new Error(`${system} holds ${subject.held()} polls, not ${count}, at the deadline`));
      }
    };
    const onRequest = () => {
      if (scheduled) return;
      scheduled = true;
      setImmediate(check);
    };
    subject.server.on('request', onRequest);
    const timer = setInterval(check, 1);
  });
}

answerRequests({
  port: () => /** @type {import('node:net').AddressInfo} */ (subject.server.address()).port,
  held: () => subject.held(),
  /** Resolves once at least `count` polls are held; bounded by `timeout` milliseconds. */
  async waitHeld({ count, timeout }) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const held = subject.held();
      if (held >= count) return held;
      if (Date.now() > deadline) throw new Error(`${system} holds ${held} polls, not ${count}, after ${timeout} ms`);
      await sleep(held === 0 ? 2 : 1);
    }
  },
  /** Heap and RSS after full collections: called between timed windows only. */
  memory() {
    collect();
    collect();
    const { heapUsed, rss } = process.memoryUsage();
    return { heapUsed, rss };
  },
  /**
   * Publishes one message (on `channel` when given, else the system's own; `window`: a fanout,
   * profiled under BENCH_PROFILE); returns the monotonic clock (ns, shared by all processes) just
   * before.
   */
  async publish({ window = false, channel } = {}) {
    if (window) await inspector?.post('Profiler.start');
    profiling = window && inspector !== undefined;
    cpuMark = process.cpuUsage();
    const before = process.hrtime.bigint();
    await (channel === undefined ? subject.publish(message()) : publishOn(channel));
    return String(before);
  },
  /**
   * Closed loop over a fixed number of publishes, for bench/many.js: publish on `channels[i %
   * length]`, wait until `clients` polls are held again (their re-polls read and parked), publish
   * the next. Returns the server's CPU time (user + system, µs) and wall time (ms) over the loop.
   * Unlike `steady` it never spins: it looks at the held count once per event-loop turn in which
   * a request arrived, and on a 1 ms timer, so an idle wait costs (almost) no CPU.
   */
  async cycle({ publishes, clients, channels, timeout = 60_000 }) {
    if (inspector) await inspector.post('Profiler.start');
    const mark = process.cpuUsage();
    const start = performance.now();
    for (let i = 0; i < publishes; i++) {
      await publishOn(channels[i % channels.length]);
      await heldAgain(clients, start + timeout);
    }
    const { user, system: kernel } = process.cpuUsage(mark);
    const ms = performance.now() - start;
    if (inspector) {
      const { profile } = await inspector.post('Profiler.stop');
      writeFileSync(`${profileDir}/${system}-cycle-${process.pid}-${profiles++}.cpuprofile`, JSON.stringify(profile));
    }
    return { cpu: user + kernel, ms };
  },
  /** CPU time (user + system, µs) since the last publish began. */
  async cpu() {
    const { user, system: kernel } = process.cpuUsage(cpuMark);
    if (inspector && profiling) {
      profiling = false;
      const { profile } = await inspector.post('Profiler.stop');
      writeFileSync(`${profileDir}/${system}-${profiles++}.cpuprofile`, JSON.stringify(profile));
    }
    return user + kernel;
  },
  /**
   * Closed loop for `duration` ms: as soon as `clients` polls are held again, publish the next
   * message. Returns how many messages went out. Waiting checks once per event-loop turn, so
   * the loop never stops the server from reading the re-polls.
   */
  async steady({ duration, clients }) {
    const end = performance.now() + duration;
    let count = 0;
    while (performance.now() < end) {
      if (subject.held() >= clients) {
        await subject.publish(message());
        count++;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    return count;
  },
});
