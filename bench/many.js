/**
 * Many channels in one request against one channel per request, in `npm run bench`: server CPU
 * per delivered answer. Each turn is a fresh longpoll-kit server process (bench/servers/kit.js)
 * and a fresh load generator (bench/load.js) whose N clients re-poll at once after every answer,
 * resuming from their cursor. Many: each client polls 10 of 40 channels, a different list per
 * client (bench/clients/channels.js), with its composite cursor. Single: the same N clients on 4
 * channels, one each. The server publishes round-robin on every channel of the turn, and only
 * when all N polls are held again, so every answer carries exactly one message and each publish
 * wakes N/4 polls in both turns. The CPU time of the server process over a fixed number of
 * publishes, divided by the answers they caused, covers writing each answer and reading and
 * parking the re-poll that follows it. Turns alternate, the first variant swapping each round.
 */
import { asker, whenReady } from './rpc.js';
import { median, spawnNode, stop } from './turn.js';
import { publishedChannels } from './clients/channels.js';

/**
 * One turn of one variant.
 * @param {'many' | 'single'} variant
 * @param {{ clients: number, publishes: number, warmup: number }} plan
 */
export async function runManyTurn(variant, plan) {
  const server = spawnNode(['--expose-gc', 'server.js', 'kit'], 'server');
  /** @type {import('node:child_process').ChildProcess | undefined} */
  let load;
  try {
    await whenReady(server, 'kit server');
    const askServer = asker(server, 'kit server');
    const port = await askServer('port');
    load = spawnNode(['load.js', `kit-${variant}`, String(port), String(plan.clients + 100)], 'load');
    await whenReady(load, `kit-${variant} load generator`);
    const askLoad = asker(load, `kit-${variant} load generator`);
    const { clients } = plan;
    const channels = publishedChannels(variant);
    await askLoad('steady', { clients }, 120_000);
    await askServer('waitHeld', { count: clients, timeout: 60_000 }, 65_000);
    // Warm-up: the code paths compiled, the channels' histories started.
    await askServer('cycle', { publishes: plan.warmup, clients, channels }, 70_000);
    await askLoad('mark');
    const { cpu, ms } = await askServer('cycle', { publishes: plan.publishes, clients, channels }, 70_000);
    const { answers, messages, errors } = await askLoad('stop');
    if (errors.length > 0) throw new Error(`kit-${variant}: ${errors.join('; ')}`);
    // Every channel has clients / 4 followers (channels.js); a publish wakes each of them once.
    const expected = (plan.publishes * clients) / 4;
    if (answers !== expected) throw new Error(`kit-${variant}: ${answers} answers, expected ${expected}`);
    return { variant, cpuPerAnswer: cpu / answers, messagesPerAnswer: messages / answers, answersPerSecond: answers / (ms / 1000) };
  } finally {
    await stop(server);
    if (load) await stop(load);
  }
}

/**
 * @param {{ rounds: number, clients: number, publishes: number, warmup: number }} plan
 * @param {(line: string) => void} [log]
 */
export async function measureMany(plan, log = console.log) {
  const turns = [];
  for (let round = 0; round < plan.rounds; round++) {
    for (const variant of round % 2 ? ['many', 'single'] : ['single', 'many']) {
      const t0 = Date.now();
      const turn = await runManyTurn(variant, plan);
      turns.push(turn);
      log(
        `many round ${round + 1}/${plan.rounds} ${variant.padEnd(6)} ${turn.cpuPerAnswer.toFixed(1)} µs CPU/answer, ` +
          `${Math.round(turn.answersPerSecond)} answers/s, ${turn.messagesPerAnswer.toFixed(2)} messages/answer (${Date.now() - t0} ms)`,
      );
    }
  }
  const pick = (variant, field) => median(turns.filter((turn) => turn.variant === variant).map((turn) => turn[field]));
  const summary = {};
  for (const variant of ['single', 'many']) {
    summary[variant] = {
      cpuPerAnswer: pick(variant, 'cpuPerAnswer'),
      answersPerSecond: pick(variant, 'answersPerSecond'),
      messagesPerAnswer: pick(variant, 'messagesPerAnswer'),
    };
  }
  // The ratio of each round's pair, then their median: a pair ran minutes apart at most.
  const ratios = [];
  for (let round = 0; round < plan.rounds; round++) {
    const pair = turns.slice(round * 2, round * 2 + 2);
    const many = pair.find((turn) => turn.variant === 'many');
    const single = pair.find((turn) => turn.variant === 'single');
    ratios.push(many.cpuPerAnswer / single.cpuPerAnswer);
  }
  return { plan, summary, ratios, ratio: median(ratios), turns };
}
