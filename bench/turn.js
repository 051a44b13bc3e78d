/**
 * One turn of one system: a fresh server process and a fresh load generator, then every
 * per-system figure measured in order (memory and fanout at each N, latency, steady state),
 * then both processes stopped, also on failure.
 */
import { execFileSync, spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { asker, whenReady } from './rpc.js';

const here = fileURLToPath(new URL('.', import.meta.url));
/** The hard open-file limit is 20,000; each side of 15,000 held polls needs that many sockets. */
const FILES = 19_999;

/**
 * Whether servers and load generators each get a CPU of their own (`taskset`, two CPUs or more;
 * `BENCH_PIN=0` turns it off). Left to the scheduler, the two share a CPU in some turns and not
 * in others: on 2026-12-01 the event-stream fanouts of longpoll-kit against raw ranged 0.65-1.42x
 * between one run's pairs of turns, and 0.91-1.01x pinned.
 */
export const pinned =
  process.env.BENCH_PIN !== '0' &&
  os.availableParallelism() >= 2 &&
  (() => {
    try {
      execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

/**
 * A node child with an IPC channel and a raised open-file limit (set in the same shell); given a
 * `role` and when {@link pinned}, on CPU 0 (`'server'`) or CPU 1 (`'load'`). The many-channel
 * and event-stream sections pin their processes; the peers section keeps them unpinned, as in
 * every run before, so that its figures compare with those: pinning it changed neither its
 * latency nor its steady state beyond their noise (2026-12-01: longpoll-kit's latency 1.30x and
 * 1.42x raw in two pinned runs, 1.39x unpinned; raw's steady state 29,600 and 28,500
 * messages/s).
 * @param {string[]} args
 * @param {'server' | 'load'} [role]
 */
export function spawnNode(args, role) {
  const pin = pinned && role ? `taskset -c ${role === 'server' ? 0 : 1} ` : '';
  const command = `ulimit -n ${FILES} && exec ${pin}"${process.execPath}" ${args.map((arg) => `'${arg}'`).join(' ')}`;
  return spawn('bash', ['-c', command], { cwd: here, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

/** @param {import('node:child_process').ChildProcess} child */
export async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

/**
 * @param {string} system
 * @param {{ sizes: number[], latencyRounds: number, steadyMs: number, steadyClients: number, bestOf?: Record<number, number> }} plan
 *   `latencyRounds` in this turn; `bestOf[n]`: fanouts to n held polls in this turn, the fastest kept
 * @param {{ cpuProf?: string }} [options]
 */
export async function runTurn(system, plan, options = {}) {
  const serverArgs = ['--expose-gc', ...(options.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProf}`] : []), 'server.js', system];
  const server = spawnNode(serverArgs);
  /** @type {import('node:child_process').ChildProcess | undefined} */
  let load;
  try {
    await whenReady(server, `${system} server`);
    const askServer = asker(server, `${system} server`);
    const port = await askServer('port');
    const connections = Math.max(...plan.sizes, plan.steadyClients) + 300;
    load = spawnNode(['load.js', system, String(port), String(connections)]);
    await whenReady(load, `${system} load generator`);
    const askLoad = asker(load, `${system} load generator`);

    /**
     * Makes sure `count` polls are held. An answer still on its way when a phase stopped leaves
     * its session idle (faye delivers a millisecond or so late): such sessions poll again.
     */
    async function holdAll(count) {
      for (let attempt = 1; ; attempt++) {
        await askLoad('hold', { count }, 120_000);
        try {
          await askServer('waitHeld', { count, timeout: attempt === 5 ? 60_000 : 5_000 }, 70_000);
          return;
        } catch (error) {
          if (attempt === 5) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    }

    /** Holds `count` polls, publishes once, waits for every answer; `memory`: measured first. */
    async function fanout(count, { memory: measure = false } = {}) {
      await holdAll(count);
      const memory = measure ? await askServer('memory') : undefined;
      await askLoad('mark');
      const before = BigInt(await askServer('publish', { window: true }));
      const { first, last, errors } = await askLoad('await', { count, timeout: 60_000 }, 70_000);
      if (process.env.BENCH_DEBUG) console.log(system, count, 'first', Number(BigInt(first) - before) / 1e6, 'last', Number(BigInt(last) - before) / 1e6);
      const cpu = await askServer('cpu');
      if (errors.length > 0) throw new Error(`${system}: ${errors.join('; ')}`);
      const seconds = Number(BigInt(last) - before) / 1e9;
      return { memory, seconds, cpu };
    }

    // Warm-up: the code paths compiled and the peers' lazy set-up (faye's handshake) done.
    await fanout(50);

    const latencies = [];
    for (let round = 0; round < plan.latencyRounds; round++) {
      await askLoad('hold', { count: 1 });
      await askServer('waitHeld', { count: 1, timeout: 10_000 });
      await askLoad('mark');
      const before = BigInt(await askServer('publish'));
      const { last } = await askLoad('await', { count: 1, timeout: 10_000 });
      latencies.push(Number(BigInt(last) - before) / 1000);
    }

    const clients = plan.steadyClients;
    await askLoad('steady', { clients }, 60_000);
    await askServer('waitHeld', { count: clients, timeout: 30_000 }, 35_000);
    await askLoad('mark');
    const published = await askServer('steady', { duration: plan.steadyMs, clients }, plan.steadyMs + 10_000);
    const { messages, errors } = await askLoad('stop');
    if (errors.length > 0) throw new Error(`${system} steady state: ${errors.join('; ')}`);

    // The steady-state clients stay held; the fanouts below answer them along with the rest.
    await holdAll(clients);
    // The baseline of the memory figures: those clients held, after the steady state, so that
    // what a system keeps besides its polls (a history, now at its size) is in both figures.
    const base = await askServer('memory');
    const sizes = {};
    for (const count of plan.sizes) {
      const { memory, seconds, cpu } = await measureFanout(fanout, count, plan.bestOf?.[count] ?? 1);
      sizes[count] = {
        responsesPerSecond: count / seconds,
        cpuPerResponse: cpu / count,
        heapPerPoll: (memory.heapUsed - base.heapUsed) / (count - clients),
        rssPerPoll: (memory.rss - base.rss) / (count - clients),
      };
    }

    return {
      system,
      sizes,
      latencies,
      latencyMedian: median(latencies),
      latencyP99: percentile(latencies, 99),
      steadyPerSecond: messages / (plan.steadyMs / 1000),
      steadyPublished: published,
    };
  } finally {
    // The server first: its side of each socket then takes the TIME_WAIT, not the client ports.
    await stop(server);
    if (load) await stop(load);
  }
}

/**
 * The figures of one N: memory on a fanout of its own, not timed, as the forced collections
 * behind them left every system (raw node:http included) 2–5× slower for its next fanouts; then
 * the fastest of `repeats` timed fanouts. A fanout takes a fraction of a second, so one burst of
 * someone else's work on this shared machine can halve it: where it is cheap, repeat and keep the
 * fastest (medians over turns come later).
 * @template {{ memory: unknown, seconds: number, cpu: number }} Run
 * @param {(count: number, options?: { memory?: boolean }) => Promise<Run>} fanout
 * @param {number} count
 * @param {number} repeats
 */
export async function measureFanout(fanout, count, repeats) {
  const { memory } = await fanout(count, { memory: true });
  let best = await fanout(count);
  for (let repeat = 1; repeat < repeats; repeat++) {
    const run = await fanout(count);
    if (run.seconds < best.seconds) best = run;
  }
  return { memory, seconds: best.seconds, cpu: best.cpu };
}

export { median };
