/**
 * A diagnostic, not a target: what a poll over 10 channels costs in longpoll-kit's own code,
 * without sockets, against a poll over one. The HTTP protocol (`createProtocol`, as every adapter
 * uses it) serves 1,000 clients shaped as bench/many.js shapes them (10 of 40 channels each, or
 * one of 4) with requests made in the process; each publish wakes a quarter of them, which
 * re-poll at once with the cursor they got. Prints the CPU time per answer (median of 5 segments
 * of the run) and the heap per held poll (20,000 held, after forced collections). Each variant
 * runs in a process of its own, three times, alternating.
 *
 *   npm run build && node bench/many-in-process.js
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Broker } from '../dist/index.js';
import { createProtocol } from '../dist/http/protocol.js';
import { manyChannels, publishedChannels, singleChannel } from './clients/channels.js';

const variant = process.argv[2];
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A protocol and `clients` clients that each hold a poll and re-poll when answered. */
function setUp(clients) {
  const broker = new Broker();
  const protocol = createProtocol(broker, { prefix: '/channels' });
  const answered = [];
  const serve = (client) => {
    const cursor = client.cursor ? `&cursor=${encodeURIComponent(client.cursor)}` : '';
    const url = variant === 'many' ? `/channels?channels=${encodeURIComponent(manyChannels(client.index).join(','))}&wait=55${cursor}` : `/channels/${singleChannel(client.index)}?wait=55${cursor}`;
    const request = { method: 'GET', url, header: () => undefined, body: { chunks: [] }, clientKey: '127.0.0.1', raw: undefined };
    client.exchange = protocol.serve(request, {
      write(response) {
        client.cursor = response.headers['longpoll-cursor'];
        answered.push(client);
      },
    });
  };
  const all = Array.from({ length: clients }, (_, index) => ({ index, cursor: undefined, exchange: undefined }));
  return { broker, serve, all, answered };
}

async function cpuPerAnswer() {
  const { broker, serve, all, answered } = setUp(1000);
  for (const client of all) serve(client);
  while (broker.stats().waiters < all.length) await tick();
  const channels = publishedChannels(variant);
  let next = 0;
  const cycle = async (publishes) => {
    let answers = 0;
    for (let i = 0; i < publishes; i++) {
      await broker.publish(channels[next++ % channels.length], { text: 'hello' });
      await tick();
      const woken = answered.splice(0);
      answers += woken.length;
      for (const client of woken) {
        client.exchange.end();
        serve(client);
      }
      while (broker.stats().waiters < all.length) await tick();
    }
    return answers;
  };
  await cycle(100);
  const segments = [];
  for (let s = 0; s < 5; s++) {
    globalThis.gc?.();
    const before = process.cpuUsage();
    const answers = await cycle(120);
    const { user, system } = process.cpuUsage(before);
    segments.push((user + system) / answers);
  }
  await broker.close();
  return segments.sort((a, b) => a - b)[2];
}

async function heapPerHeldPoll() {
  const { broker, serve, all } = setUp(20_000);
  for (const channel of publishedChannels('many')) await broker.publish(channel, { text: 'hello' });
  for (const client of all) serve(client);
  await tick();
  for (const client of all) client.exchange.end();
  globalThis.gc();
  globalThis.gc();
  const before = process.memoryUsage().heapUsed;
  for (const client of all) serve(client);
  while (broker.stats().waiters < all.length) await tick();
  globalThis.gc();
  globalThis.gc();
  const bytes = (process.memoryUsage().heapUsed - before) / all.length;
  await broker.close();
  return bytes;
}

if (variant) {
  console.log(JSON.stringify({ cpu: await cpuPerAnswer(), heap: await heapPerHeldPoll() }));
} else {
  const runs = { single: [], many: [] };
  for (let round = 0; round < 3; round++) {
    for (const name of round % 2 ? ['many', 'single'] : ['single', 'many']) {
      const child = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), name], { encoding: 'utf8' });
      if (child.status !== 0) throw new Error(child.stderr);
      runs[name].push(JSON.parse(child.stdout));
    }
  }
  const median = (values) => [...values].sort((a, b) => a - b)[1];
  for (const name of ['single', 'many']) {
    console.log(`${name.padEnd(6)} ${median(runs[name].map((run) => run.cpu)).toFixed(1)} µs CPU/answer, ${Math.round(median(runs[name].map((run) => run.heap)))} B heap/held poll`);
  }
}
