/**
 * `npm run bench` (add `-- --quick` for a short run): longpoll-kit side by side with raw
 * node:http and with socket.io, faye and express-longpoll, in one run on this machine; then
 * many-channel polls against one-channel polls (bench/many.js) and Server-Sent Events against
 * raw node:http (bench/sse.js).
 * Each turn is a fresh server process and a separate load-generator process on 127.0.0.1;
 * systems alternate with raw so that machine drift cancels; figures are medians over rounds.
 * Writes bench/results/latest.{md,svg,json} (quick: quick.*) and, after a full run,
 * docs/benchmarks.md. `-- --only=many,sse` runs only the named sections (peers, history,
 * engines, many, sse; combine with --quick) and writes bench/results/only.{md,json} and nothing
 * else. BENCH_DEBUG=1 prints, for every fanout, when the first and the last
 * response arrived after the publish.
 */
import { execFileSync, execSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureMany } from './many.js';
import { renderMany, renderSse } from './report-channels.js';
import { renderMarkdown, renderSvg, summarise } from './report.js';
import { measureSse } from './sse.js';
import { pinned, runTurn } from './turn.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const quick = process.argv.includes('--quick');
const SECTIONS = ['peers', 'history', 'engines', 'many', 'sse'];
const onlyAt = process.argv.findIndex((arg) => arg === '--only' || arg.startsWith('--only='));
/** The sections to run: all of them, or those `--only=a,b` names. */
const only =
  onlyAt === -1
    ? undefined
    : (process.argv[onlyAt].includes('=') ? process.argv[onlyAt].slice(7) : (process.argv[onlyAt + 1] ?? '')).split(',').filter(Boolean);
for (const section of only ?? []) {
  if (!SECTIONS.includes(section)) throw new Error(`bench: --only takes a list of ${SECTIONS.join(', ')}; not ${section}`);
}
const runs = (section) => !only || only.includes(section);
const started = Date.now();

/** The newest modification time under `dir`, in ms. */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

// The benchmark imports the package by name, which resolves to dist/: make sure it is current.
const dist = join(root, 'dist');
function build(reason) {
  console.log(`bench: ${reason}, running npm run build`);
  try {
    execSync('npm run -s build', { cwd: root, stdio: 'inherit' });
  } catch (error) {
    console.error('bench: npm run build failed; fix the build (or run it yourself) and run the benchmark again');
    throw error;
  }
}
if (!existsSync(join(dist, 'index.js')) || !existsSync(join(dist, 'adapters', 'node.js'))) {
  build('dist/ is missing');
} else if (newest(join(root, 'src')) > statSync(join(dist, 'index.js')).mtimeMs) {
  build('src/ is newer than dist/');
} else {
  console.log('bench: using dist/ (built after the last change to src/)');
}

/** Waits (bounded) while another `npm run build` has dist/ half-written. */
async function distReady() {
  const deadline = Date.now() + 120_000;
  while (!existsSync(join(dist, 'index.js')) || !existsSync(join(dist, 'adapters', 'node.js'))) {
    if (Date.now() > deadline) throw new Error('dist/ did not come back within 120 s');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
}

/** 15,000 held polls need that many sockets on each side; the hard limit must allow it. */
const hardLimit = Number(execSync('ulimit -Hn', { shell: '/bin/bash' }).toString().trim());
const canHold15k = hardLimit === Number.POSITIVE_INFINITY || Number.isNaN(hardLimit) ? true : hardLimit >= 16_000;
if (!canHold15k) console.log(`bench: the open-file hard limit is ${hardLimit}; skipping N = 15,000`);

const plan = quick
  ? { rounds: 3, sizes: [1000], latencyRounds: 300, steadyMs: 300, steadyClients: 100, historyRounds: 3, historyPolls: 10_000 }
  : {
      rounds: 5,
      sizes: canHold15k ? [1000, 5000, 15_000] : [1000, 5000],
      latencyRounds: 1000,
      // A fanout to 1,000 polls takes about 10 ms once warm, to 5,000 about 100 ms: the fastest
      // of 6 and of 2 per turn (every system). After the untimed fanout that follows the forced
      // collections (measureFanout in bench/turn.js), the next two or three to 1,000 still ran up
      // to 3× slower than the settled ones.
      bestOf: { 1000: 6, 5000: 2 },
      steadyMs: 1000,
      steadyClients: 100,
      historyRounds: 5,
      historyPolls: 20_000,
    };
/** bench/many.js: N re-polling clients, a fixed number of publishes per turn; 5 rounds, as a round's pair of turns can differ by a third on this shared machine. */
plan.many = quick ? { rounds: 1, clients: 400, publishes: 20, warmup: 5 } : { rounds: 5, clients: 1000, publishes: 40, warmup: 10 };
/**
 * bench/sse.js: fanouts to N open streams; 5 rounds, as a round's pair of turns differed by up to
 * a third at N = 1,000 (0.67–1.02 in one session); the fastest of 6 at every N, as the first
 * fanouts to streams just opened ran up to twice as slow as the settled ones for both systems
 * (2026-12-01: 20 µs of server CPU per event against 12-13).
 */
plan.sse = quick
  ? { rounds: 1, sizes: [1000] }
  : { rounds: 5, sizes: canHold15k ? [1000, 5000, 15_000] : [1000, 5000], bestOf: { 1000: 6, 5000: 6, 15_000: 6 } };
plan.many.pinned = plan.sse.pinned = pinned;
/** What the first measurements led to: kept in docs/benchmarks.md under every new run's figures. */
const HISTORY = `
## What these measurements changed

The first run of this benchmark (N = 5,000, three alternating rounds, before any change) found
longpoll-kit at 8.3 KB of heap per held poll against 4.1 KB for raw node:http, 45 µs of server
CPU per response against 32.5 µs (1.39×), and a median latency of 260 µs against 106 µs.
Profiling (\`node --cpu-prof\`, \`BENCH_PROFILE=dir npm run bench\` for the fanout windows, heap
snapshots) led to these changes:

- The Node adapter keeps one small object per request instead of an \`AbortController\` (about
  1 KB with its listener), a \`close\` closure, a header closure and a body object.
- The protocol chains the answer onto the broker's promise instead of keeping three suspended
  async frames per held poll; a fanout's polls share one frozen answer (body, headers,
  \`content-length\`) when they hold no lease and asked no \`Prefer: wait\`; poll answers carry
  \`content-length\` instead of being chunked.
- \`Broker.poll\` settles one promise instead of an async function's promise adopting another.
- The poll jitter comes in 32 steps, so held polls share Node's per-duration timer lists.
- \`MemoryEngine\` reuses the last cursor string it made, so the polls held at a channel's head
  share one string instead of holding one each.
- \`MemoryEngine\` draws ulid randomness from a pooled buffer: ulid's default made 16
  \`crypto.getRandomValues\` calls per id, about 30 µs of every publish in a new millisecond.

- Held polls on the default \`MemoryEngine\` are answered with its synchronous read (the drain
  still yields once, so a burst of publishes is one batch); \`publishedAt\` is formatted from a
  per-second prefix instead of \`toISOString\` per message; payloads are frozen without an
  \`Object.keys\` array per object; \`content-length\` is counted with \`Buffer.byteLength\`
  instead of encoding every body. Publish→\`res.end\` in one server process, old and new
  alternating per round: median 78/64 → 74/56 µs, p90 114/103 → 101/93 µs; the median latency
  ratio went from 1.81× to 1.45× raw.

The next profile of the publish path (hrtime marks between publish and \`res.end\`, 400 latency
rounds per turn) found it about 60 µs against 28 µs for raw node:http, spread over many small
steps, and the heap snapshot of 3,000 held polls found 1,285 B per poll over raw, 565 B of it
promises, closures and reactions. Then:

- \`Broker.publish\` copies plain JSON data by a walk and serialises the frozen copy, instead of
  serialising, parsing and freezing; \`MemoryEngine\` keeps each message's JSON text and hands
  it to the HTTP layer (\`Batch.json\`), so answers are assembled, not serialised.
- Held polls are answered inside the publish (the memory engine reads synchronously); their
  timers are cleared after the answers are written; one group of waiters needs no map; the last
  cursor made is not parsed again.
- HTTP polls on the Node and Express adapters keep no promise and no closure: the broker hands
  the result to a small receiver that writes the response.
- Poll answers are encoded to bytes once per publish: a fanout used to encode the same text
  once per socket (CPU profile of the fanout windows: 16% → 3% more than raw).

Publish→\`res.end\`: about 60 → 40 µs (raw: 27 µs); heap per held poll over raw in the snapshot:
1,285 → 853 B. The median latency ratio went from 1.45× to 1.17–1.28× raw in the four full runs after the changes.

The hardening round then tied every request to its connection's real lifetime and gave each
speed trick a micro-benchmark of its own (see "Micro-benchmarks" below). Changed on the hot path:

- One seam between the broker and HTTP: the broker hands a typed \`Answer\` (the result, the
  engine's text of its messages, its bytes made once) to a ticket; the side tables keyed by
  object identity, the shared frozen HTTP answer and the engine's last-read memo are gone, and
  every answer builds its own small headers object.
- A request's lease is released when its answer has been handed to the socket (\`finish\`) or the
  socket closes, through one listener per response and one per socket, instead of at
  \`res.end()\`; the disconnect signal imitation is gone.
- Timers of answered polls are cleared as each is answered (clearing them after the writes, in a
  \`setImmediate\`, measured 1.00–1.05×), waiters are always grouped with a map (the one-group
  shortcut saved about 16 µs per 1,000 waiters), and answers are encoded with \`Buffer.from\`.
`;

/** Raw comes back every third turn, next to longpoll-kit and to each peer. */
const ORDER = ['raw', 'kit', 'socket.io', 'raw', 'faye', 'express-longpoll'];

/** How many turns `system` gets in the run: its latency rounds are spread over them. */
const turnsOf = (system) => plan.rounds * ORDER.filter((name) => name === system).length;

const turns = [];
for (let round = 0; round < (runs('peers') ? plan.rounds : 0); round++) {
  for (const system of ORDER) {
    const t0 = Date.now();
    let turn;
    for (let attempt = 1; !turn; attempt++) {
      await distReady();
      try {
        turn = await runTurn(system, { ...plan, latencyRounds: Math.ceil(plan.latencyRounds / turnsOf(system)) });
      } catch (error) {
        // Someone may have been rebuilding dist/ (npm run build empties it first): retry twice.
        if (attempt === 3) throw error;
        console.log(`bench: ${system} failed (${String(error).split('\n')[0]}); retrying`);
      }
    }
    turns.push(turn);
    const largest = turn.sizes[plan.sizes.at(-1)];
    console.log(
      `round ${round + 1}/${plan.rounds} ${system.padEnd(16)} ` +
        `fanout ${Math.round(largest.responsesPerSecond)}/s, ${largest.cpuPerResponse.toFixed(1)} µs CPU/response, ` +
        `${Math.round(largest.heapPerPoll)} B heap/poll, latency ${turn.latencyMedian.toFixed(0)} µs (${Date.now() - t0} ms)`,
    );
  }
}

let history = [];
if (runs('history')) {
  console.log('bench: history (in process)');
  // Imported here, not at the top: history.js imports the package, which the build above makes.
  const { measureHistory } = await import('./history.js');
  history = await measureHistory({ rounds: plan.historyRounds, polls: plan.historyPolls });
}

// The engines side by side (bench/postgres.js: memory, Redis and PostgreSQL in one run), in a
// process of its own; its Markdown tables go into the report as they are.
let engines = 'Not measured in this run.';
if (runs('engines')) {
  console.log('bench: engines (bench/postgres.js)');
  try {
    const output = execFileSync(process.execPath, [join(root, 'bench', 'postgres.js')], {
      cwd: root,
      timeout: 180_000,
      encoding: 'utf8',
      env: { ...process.env, ...(quick ? { PHASE_MS: '500', ROUNDS: '100' } : {}) },
    });
    engines = output.slice(output.indexOf('\nPublish throughput')).trim();
  } catch (error) {
    engines = `Not measured: bench/postgres.js failed (${String(error.message ?? error).split('\n')[0]}).`;
  }
}

/** A section that failed is reported as not measured; the rest of the run stands. */
async function section(name, title, measure) {
  if (!runs(name)) return undefined;
  console.log(`bench: ${title}`);
  const t0 = Date.now();
  try {
    await distReady();
    return await measure();
  } catch (error) {
    console.log(`bench: ${name} failed: ${String(error?.stack ?? error)}`);
    return { error: `${String(error?.message ?? error).split('\n')[0]}` };
  } finally {
    console.log(`bench: ${name} took ${Math.round((Date.now() - t0) / 1000)} s`);
  }
}
const many = await section('many', 'many channels in one request (bench/many.js)', () => measureMany(plan.many));
const sse = await section('sse', 'Server-Sent Events (bench/sse.js)', () => measureSse(plan.sse));
const streams = `${many ? `\n${renderMany(many).trimEnd()}\n` : ''}${sse ? `\n${renderSse(sse).trimEnd()}\n` : ''}`;

const cpus = os.cpus();
const machine = {
  cpu: `${cpus.length} × ${cpus[0]?.model ?? 'unknown'}`,
  memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
  os: `${os.type()} ${os.release()} ${os.arch()}`,
  node: process.version,
};
const command = `${quick ? 'npm run bench -- --quick' : 'npm run bench'}${only ? `${quick ? '' : ' --'} --only=${only.join(',')}` : ''}`;
const context = { machine, pinned, command, plan, date: new Date().toISOString(), seconds: Math.round((Date.now() - started) / 1000) };
const results = join(root, 'bench', 'results');
mkdirSync(results, { recursive: true });
if (only) {
  // Some sections only: printed and written to bench/results/only.*, never over a full run's files.
  const peers = runs('peers') ? `\n${renderMarkdown(summarise(turns, plan, history), context).replace(/^# .*\n/, '').trimEnd()}\n` : '';
  const engineSection = runs('engines') ? `\n## Engines: memory, Redis and PostgreSQL\n\n${engines}\n` : '';
  const partial = `# Benchmarks: ${only.join(', ')}\n\nCommand: \`${command}\` · ${context.date} · ${context.seconds} s  \nMachine: ${machine.cpu}, ${machine.memory}, ${machine.os}, Node ${machine.node}  \n${pinned ? 'Many-channel polls and event streams: the server on CPU 0 and the load generator on CPU 1 (taskset).' : 'Processes not pinned to CPUs.'}\n${peers}${engineSection}${streams}`;
  writeFileSync(join(results, 'only.md'), partial);
  writeFileSync(join(results, 'only.json'), `${JSON.stringify({ context, turns, history, engines, many, sse }, null, 2)}\n`);
  console.log(`\n${partial}`);
  console.log(`bench: wrote bench/results/only.md and .json in ${context.seconds} s`);
  process.exit(0);
}
const summary = summarise(turns, plan, history);
const markdown = `${renderMarkdown(summary, context).trimEnd()}\n\n## Engines: memory, Redis and PostgreSQL\n\nbench/postgres.js, in the same run: publish throughput, and publish→receipt latency from one instance to another.\n\n${engines}\n${streams}`;

const name = quick ? 'quick' : 'latest';
writeFileSync(join(results, `${name}.md`), markdown);
writeFileSync(join(results, `${name}.svg`), renderSvg(summary, context));
writeFileSync(join(results, `${name}.json`), `${JSON.stringify({ context, summary, turns, many, sse }, null, 2)}\n`);
if (!quick) {
  // The micro-benchmarks' section is written by `npm run bench:micro -- --write`: keep it.
  const docs = join(root, 'docs', 'benchmarks.md');
  const previous = existsSync(docs) ? readFileSync(docs, 'utf8') : '';
  const micro = previous.indexOf('\n## Micro-benchmarks');
  writeFileSync(
    docs,
    `# Benchmarks\n\nWritten by \`npm run bench\` (bench/run.js); the chart is [bench/results/latest.svg](../bench/results/latest.svg). ` +
      'How each figure is measured is described in bench/run.js, bench/turn.js, bench/history.js, bench/many.js and bench/sse.js; `node bench/run.js --only=many,sse` runs some sections alone.\n\n' +
      markdown.replace(/^# .*\n/, '') +
      HISTORY +
      (micro === -1 ? '' : previous.slice(micro)),
  );
}
console.log(`\n${markdown}`);
console.log(`bench: wrote bench/results/${name}.md, .svg, .json${quick ? '' : ' and docs/benchmarks.md'} in ${context.seconds} s`);
