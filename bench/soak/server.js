/**
 * The soak's server, in a process of its own: `node --expose-gc bench/soak/server.js`, forked
 * by bench/soak/run.js. longpoll-kit as a user mounts it (the built package, the Node adapter,
 * a MemoryEngine with its default history, a ConnectionLimiter) on 127.0.0.1; it answers polls of
 * one channel and of several, and event streams. On request it
 * publishes at a steady rate and samples itself every 10 s, sending each sample to the driver
 * over IPC unasked.
 */
import { createServer } from 'node:http';
import { Broker, ConnectionLimiter } from 'longpoll-kit';
import { longPoll } from 'longpoll-kit/node';
import { answerRequests } from '../rpc.js';

const collect = globalThis.gc;
if (!collect) throw new Error('Run me with --expose-gc');

/** @type {{ clients: number, channels: number, addresses: number, wait: number, maxStream: number }} */
const config = JSON.parse(process.argv[2] ?? '{}');
const perAddress = Math.ceil(config.clients / config.addresses);

const broker = new Broker();
// The clients come from `addresses` loopback addresses, `perAddress` each. A destroyed poll's
// replacement connects from the same address at once, possibly before the server has seen the
// old socket close, hence the margin; the other caps keep their defaults unless the population
// would not fit under them.
const limiter = new ConnectionLimiter({
  perClient: perAddress + Math.max(8, Math.ceil(perAddress / 4)),
  perChannel: Math.max(10_000, 2 * Math.ceil(config.clients / config.channels)),
  total: Math.max(100_000, 2 * config.clients),
});
// An event stream waits for a message as long as a poll does (`heartbeat`) and ends by itself
// after `maxStream` (5 minutes by default, less a jitter), so every stream resumes at least once.
const server = createServer(
  longPoll(broker, { prefix: '/channels', limiter, heartbeat: config.wait * 1000, maxStream: config.maxStream * 1000 }),
);
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', 4096, () => resolve(undefined));
});

/** The last `seq` published on each channel, by channel index. */
const published = Array.from({ length: config.channels }, () => 0);
let publishErrors = 0;
/** @type {NodeJS.Timeout | undefined} */
let publisher;
/** @type {NodeJS.Timeout | undefined} */
let sampler;

const held = () => ({ waiters: broker.stats().waiters, leases: limiter.stats().total });

answerRequests({
  port: () => /** @type {import('node:net').AddressInfo} */ (server.address()).port,
  held,
  limits: () => ({ perClient: limiter.perClient, perChannel: limiter.perChannel, total: limiter.total }),
  /**
   * Publishes `rate` messages per second, one channel after the other, each carrying the next
   * `seq` of its channel so that the clients can tell a gap from a duplicate.
   */
  startPublishing({ rate }) {
    let next = 0;
    publisher = setInterval(() => {
      const index = next++ % config.channels;
      const seq = ++published[index];
      broker
        .publish(`c${index}`, { seq, text: 'The quick brown fox jumps over the lazy dog, again and again.' })
        .catch(() => publishErrors++);
    }, 1000 / rate);
  },
  /** Stops publishing; returns the last `seq` of every channel. */
  stopPublishing() {
    clearInterval(publisher);
    return { published, publishErrors };
  },
  /**
   * Every `interval` ms: heap and RSS after two full collections (so that a sample shows what
   * is kept, not what is waiting to be collected), the polls held, and the CPU used since the
   * previous sample.
   */
  startSampling({ interval }) {
    const start = performance.now();
    let cpuMark = process.cpuUsage();
    let timeMark = start;
    sampler = setInterval(() => {
      const { waiters, leases } = held();
      collect();
      collect();
      const { heapUsed, rss } = process.memoryUsage();
      const now = performance.now();
      const { user, system } = process.cpuUsage(cpuMark);
      const cpu = (user + system) / 1000 / (now - timeMark);
      cpuMark = process.cpuUsage();
      timeMark = now;
      process.send?.({ sample: { t: Math.round((now - start) / 1000), heapUsed, rss, waiters, leases, cpu } });
    }, interval);
  },
  stopSampling() {
    clearInterval(sampler);
  },
});
