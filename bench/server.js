/**
 * One system under test in a fresh process: `node --expose-gc bench/server.js <system>`, run by
 * bench/run.js. It listens on 127.0.0.1 and answers the orchestrator over IPC: how many polls it
 * holds, its memory after a forced collection (never inside a timed window), publishing with a
 * timestamp and a CPU mark, and a steady stream of publishes.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { answerRequests } from './rpc.js';

const SYSTEMS = ['raw', 'kit', 'socket.io', 'faye', 'express-longpoll'];
const system = process.argv[2] ?? '';
if (!SYSTEMS.includes(system)) throw new Error(`Usage: server.js <${SYSTEMS.join('|')}>`);
const collect = globalThis.gc;
if (!collect) throw new Error('Run me with --expose-gc');

/** @type {{ server: import('node:http').Server, held: () => number, publish: (data: unknown) => unknown }} */
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
  /** Publishes one message (`window`: a fanout, profiled under BENCH_PROFILE); returns the monotonic clock (ns, shared by all processes) just before. */
  async publish({ window = false } = {}) {
    if (window) await inspector?.post('Profiler.start');
    profiling = window && inspector !== undefined;
    cpuMark = process.cpuUsage();
    const before = process.hrtime.bigint();
    await subject.publish(message());
    return String(before);
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
