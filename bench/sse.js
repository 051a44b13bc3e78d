/**
 * Server-Sent Events in `npm run bench`: one ~100-byte message published to N open streams,
 * longpoll-kit's stream (the Node adapter answering `Accept: text/event-stream` on the poll URL,
 * bench/servers/kit.js) against raw node:http writing one pre-serialised event to N held
 * responses (bench/servers/raw-sse.js). Each turn is a fresh server process (bench/server.js)
 * and a fresh load generator (bench/sse-load.js); the turns alternate, raw first. Per N: events
 * per second from the publish until the last stream received it, the server's CPU time over that
 * window per event, and heap and RSS per open stream (after forced collections, N streams open
 * against the 50 of the warm-up). Streams accumulate: the fanout at 5,000 includes the 1,000.
 */
import { asker, whenReady } from './rpc.js';
import { measureFanout, median, spawnNode, stop } from './turn.js';

const WARMUP = 50;
/**
 * Fanouts to the warm-up's streams before any is measured: 2,000 events, enough for the JIT to
 * compile both systems' write paths. With 2 (100 events), the fanouts to 1,000 streams that
 * followed still ran partly uncompiled: on 2026-12-01, 7 rounds each, longpoll-kit against raw
 * was 0.91x the fanout and 1.07x the CPU per event after 2, and 1.06x and 0.93x after 40.
 */
const WARMUP_FANOUTS = 40;
/** The server and the path its streams are on, per system. */
const SYSTEMS = { raw: { server: 'raw-sse', path: '/sse' }, kit: { server: 'kit', path: '/channels/bench' } };

/**
 * @param {'raw' | 'kit'} system
 * @param {{ sizes: number[], bestOf?: Record<number, number> }} plan
 */
export async function runSseTurn(system, plan) {
  const { server: name, path } = SYSTEMS[system];
  const server = spawnNode(['--expose-gc', 'server.js', name], 'server');
  /** @type {import('node:child_process').ChildProcess | undefined} */
  let load;
  try {
    await whenReady(server, `${name} server`);
    const askServer = asker(server, `${name} server`);
    const port = await askServer('port');
    load = spawnNode(['sse-load.js', String(port), path], 'load');
    await whenReady(load, `${system} SSE load generator`);
    const askLoad = asker(load, `${system} SSE load generator`);

    /**
     * Opens streams until `count` are open, publishes once, waits for the event on every one;
     * `memory`: measured first.
     */
    async function fanout(count, { memory: measure = false } = {}) {
      const t0 = Date.now();
      await askLoad('open', { count }, 180_000);
      await askServer('waitHeld', { count, timeout: 30_000 }, 35_000);
      const t1 = Date.now();
      const memory = measure ? await askServer('memory') : undefined;
      if (process.env.BENCH_DEBUG) console.log(`sse ${system} ${count}: streams open in ${t1 - t0} ms, memory in ${Date.now() - t1} ms`);
      await askLoad('mark');
      const before = BigInt(await askServer('publish', { window: true }));
      const { last, errors } = await askLoad('await', { count, timeout: 60_000 }, 70_000);
      const cpu = await askServer('cpu');
      if (process.env.BENCH_DEBUG) console.log(`sse ${system} ${count}${measure ? ' after gc' : ''}: ${(Number(BigInt(last) - before) / 1e6).toFixed(1)} ms, cpu ${cpu}`);
      if (errors.length > 0) throw new Error(`${system} SSE: ${errors.join('; ')}`);
      return { memory, seconds: Number(BigInt(last) - before) / 1e9, cpu };
    }

    // Warm-up: the code paths compiled. Its streams stay open: the baseline of the memory figures.
    for (let i = 0; i < WARMUP_FANOUTS; i++) await fanout(WARMUP);
    const base = await askServer('memory');
    const sizes = {};
    for (const count of plan.sizes) {
      const { memory, seconds, cpu } = await measureFanout(fanout, count, plan.bestOf?.[count] ?? 1);
      sizes[count] = {
        eventsPerSecond: count / seconds,
        cpuPerEvent: cpu / count,
        heapPerStream: (memory.heapUsed - base.heapUsed) / (count - WARMUP),
        rssPerStream: (memory.rss - base.rss) / (count - WARMUP),
      };
    }
    return { system, sizes };
  } finally {
    await stop(server);
    if (load) await stop(load);
  }
}

/**
 * @param {{ rounds: number, sizes: number[], bestOf?: Record<number, number> }} plan
 * @param {(line: string) => void} [log]
 */
export async function measureSse(plan, log = console.log) {
  const turns = [];
  for (let round = 0; round < plan.rounds; round++) {
    for (const system of /** @type {const} */ (['raw', 'kit'])) {
      const t0 = Date.now();
      const turn = await runSseTurn(system, plan);
      turns.push(turn);
      const largest = turn.sizes[plan.sizes.at(-1)];
      log(
        `sse round ${round + 1}/${plan.rounds} ${system.padEnd(4)} fanout ${Math.round(largest.eventsPerSecond)}/s, ` +
          `${largest.cpuPerEvent.toFixed(1)} µs CPU/event, ${Math.round(largest.heapPerStream)} B heap/stream (${Date.now() - t0} ms)`,
      );
    }
  }
  const summary = {};
  for (const system of ['raw', 'kit']) {
    const own = turns.filter((turn) => turn.system === system);
    summary[system] = {};
    for (const size of plan.sizes) {
      const pick = (field) => median(own.map((turn) => turn.sizes[size][field]));
      summary[system][size] = {
        eventsPerSecond: pick('eventsPerSecond'),
        cpuPerEvent: pick('cpuPerEvent'),
        heapPerStream: pick('heapPerStream'),
        rssPerStream: pick('rssPerStream'),
      };
    }
  }
  return { plan, summary, turns };
}
