/**
 * Turns the turns of one run into medians, ratios against raw node:http from the same run, a
 * markdown report and a hand-written SVG bar chart.
 */

/** @type {Record<string, string>} */
export const LABELS = {
  raw: 'raw node:http (the limit)',
  kit: 'longpoll-kit',
  'socket.io': 'socket.io (polling)',
  faye: 'faye (long-polling)',
  'express-longpoll': 'express-longpoll',
};
const SYSTEMS = Object.keys(LABELS);

const median = (values) => {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/**
 * Medians per system over its turns.
 * @param {any[]} turns
 * @param {{ sizes: number[] }} plan
 * @param {{ behind: number, capacity: number, nsPerPoll: number }[]} history
 */
export function summarise(turns, plan, history) {
  const systems = {};
  for (const system of SYSTEMS) {
    const own = turns.filter((turn) => turn.system === system);
    const sizes = {};
    for (const size of plan.sizes) {
      const pick = (field) => median(own.map((turn) => turn.sizes[size][field]));
      sizes[size] = {
        responsesPerSecond: pick('responsesPerSecond'),
        cpuPerResponse: pick('cpuPerResponse'),
        heapPerPoll: pick('heapPerPoll'),
        rssPerPoll: pick('rssPerPoll'),
      };
    }
    systems[system] = {
      turns: own.length,
      sizes,
      // Pooled over the system's turns: the rounds of the plan in all.
      latencyRounds: own.reduce((sum, turn) => sum + turn.latencies.length, 0),
      latencyMedian: median(own.flatMap((turn) => turn.latencies)),
      latencyP99: percentile(own.flatMap((turn) => turn.latencies), 99),
      steadyPerSecond: median(own.map((turn) => turn.steadyPerSecond)),
    };
  }
  return { systems, sizes: plan.sizes, history };
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

const integer = (value) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : 'n/a');
const fixed = (value, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
const ratio = (value, raw) => (Number.isFinite(value) && raw > 0 ? `${(value / raw).toFixed(2)}×` : 'n/a');

/** The targets of issue 6 for longpoll-kit, checked against this run. */
export function targets(summary) {
  const { systems, sizes, history } = summary;
  const kit = systems.kit;
  const raw = systems.raw;
  const rows = [];
  for (const size of sizes) {
    const value = kit.sizes[size].responsesPerSecond / raw.sizes[size].responsesPerSecond;
    const peers = ['socket.io', 'faye', 'express-longpoll'].map((peer) => systems[peer].sizes[size].responsesPerSecond);
    const ahead = peers.every((peer) => kit.sizes[size].responsesPerSecond > peer);
    rows.push([`fanout at N = ${integer(size)}: ≥ 0.95× raw, ahead of every peer`, `${value.toFixed(2)}× raw${ahead ? ', ahead of every peer' : ', not ahead of every peer'}`, value >= 0.95 && ahead]);
  }
  // Checked at every N: fixed costs weigh most at the smallest.
  for (const size of sizes) {
    const extra = kit.sizes[size].heapPerPoll - raw.sizes[size].heapPerPoll;
    rows.push([`heap per held poll at N = ${integer(size)}: ≤ raw + 1 KB`, `raw + ${integer(extra)} B`, extra <= 1024]);
  }
  for (const size of sizes) {
    const cpu = kit.sizes[size].cpuPerResponse / raw.sizes[size].cpuPerResponse;
    rows.push([`server CPU per response at N = ${integer(size)}: ≤ 1.15× raw`, `${cpu.toFixed(2)}× raw`, cpu <= 1.15]);
  }
  const latency = kit.latencyMedian / raw.latencyMedian;
  rows.push(['median publish→receipt latency: ≤ 1.3× raw', `${latency.toFixed(2)}× raw`, latency <= 1.3]);
  for (const behind of [...new Set(history.map((row) => row.behind))]) {
    const small = history.find((row) => row.behind === behind && row.capacity === 100)?.nsPerPoll ?? Number.NaN;
    const large = history.find((row) => row.behind === behind && row.capacity === 10_000)?.nsPerPoll ?? Number.NaN;
    const growth = large / small;
    // Linear growth would be 100×; a binary search over 100× the entries costs about 2× at most.
    rows.push([`poll ${behind} messages behind: capacity 10,000 vs 100 flat (≤ 2×, linear would be 100×)`, `${growth.toFixed(2)}×`, growth <= 2]);
  }
  return rows;
}

/**
 * @param {ReturnType<typeof summarise>} summary
 * @param {{ machine: Record<string, string>, command: string, plan: any, date: string, seconds: number }} context
 */
export function renderMarkdown(summary, context) {
  const { systems, sizes, history } = summary;
  const raw = systems.raw;
  const lines = [];
  const table = (header, rows) => {
    lines.push(`| ${header.join(' | ')} |`, `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`);
    for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
    lines.push('');
  };
  const { machine, plan } = context;
  lines.push(
    '# Benchmarks: longpoll-kit, raw node:http and peers',
    '',
    `Command: \`${context.command}\` · ${context.date} · ${context.seconds} s  `,
    `Machine: ${machine.cpu}, ${machine.memory}, ${machine.os}, Node ${machine.node}  `,
    `Plan: ${plan.rounds} rounds, medians; turn order per round ${'raw, longpoll-kit, socket.io, raw, faye, express-longpoll'}; ` +
      `each turn a fresh server process and a separate load-generator process on 127.0.0.1 (plain keep-alive HTTP/1.1 over node:net, bench/keep-alive-client.js). ` +
      'Ratios are against raw node:http from the same run. The machine is shared (2 cores, other work running), so compare ratios, not absolute figures; ' +
      'fanout rates are the noisiest figure, server CPU per response the steadiest.',
    '',
    `## Fanout: one ~100-byte message published to N held polls`,
    '',
    'Responses per second from the publish until the load generator has received the last response. Raw node:http answers every held response with one pre-serialised body and content-length, of the same shape and size as the answer of longpoll-kit (so the load generator reads the same bytes); the others do what their documentation shows (longpoll-kit: Broker + longpoll-kit/node, no limiter; socket.io: polling transport only; faye: NodeAdapter, long-polling; express-longpoll: create + publish).' +
      (plan.bestOf && Object.keys(plan.bestOf).length > 0
        ? ` Where a fanout takes only tens of milliseconds, one burst of other work on the machine can halve it, so every system repeats it in each turn and the fastest counts (${Object.entries(plan.bestOf).map(([size, count]) => `${count} at N = ${integer(Number(size))}`).join(', ')}); then the median over turns.`
        : '') +
      ' The fanout that follows the forced collections of the memory figures is not timed: right after them every system, raw node:http included, ran its next fanouts to 1,000 polls 2–5× slower (when this was found, on 2026-12-01: 18–33 ms and 40–70 µs of server CPU per response, against 7–10 ms and 10–12 µs once settled).',
    '',
  );
  table(
    ['system', ...sizes.flatMap((size) => [`N = ${integer(size)}`, '× raw'])],
    SYSTEMS.map((system) => [
      LABELS[system],
      ...sizes.flatMap((size) => [integer(systems[system].sizes[size].responsesPerSecond), ratio(systems[system].sizes[size].responsesPerSecond, raw.sizes[size].responsesPerSecond)]),
    ]),
  );
  lines.push('## Server CPU time per delivered response (µs)', '', 'process.cpuUsage() in the server, from the publish until the last response arrived, divided by N.', '');
  table(
    ['system', ...sizes.flatMap((size) => [`N = ${integer(size)}`, '× raw'])],
    SYSTEMS.map((system) => [
      LABELS[system],
      ...sizes.flatMap((size) => [fixed(systems[system].sizes[size].cpuPerResponse), ratio(systems[system].sizes[size].cpuPerResponse, raw.sizes[size].cpuPerResponse)]),
    ]),
  );
  const top = sizes.at(-1);
  lines.push(
    `## Memory per held poll (N = ${integer(top)})`,
    '',
    'Server heap and RSS after two forced collections (between timed windows), holding N polls against holding the 100 of the steady state (measured just after it, so that what a system keeps besides its polls, such as a history, is at its size in both), divided by N − 100. For socket.io and faye a held poll includes its session.',
    '',
  );
  table(
    ['system', 'heap B/poll', 'vs raw', 'RSS B/poll'],
    SYSTEMS.map((system) => {
      const { heapPerPoll, rssPerPoll } = systems[system].sizes[top];
      const extra = heapPerPoll - raw.sizes[top].heapPerPoll;
      return [LABELS[system], integer(heapPerPoll), system === 'raw' ? '' : `${extra >= 0 ? '+' : ''}${integer(extra)}`, integer(rssPerPoll)];
    }),
  );
  lines.push(
    '## Latency and steady state',
    '',
    `Publish→receipt for one waiting client, median and p99 over at least ${integer(plan.latencyRounds)} rounds per system, spread over its turns (the monotonic clock is shared by the processes), ` +
      `and ${plan.steadyClients} clients re-polling one channel for ${plan.steadyMs} ms while the server publishes the next message as soon as all of them are held again.`,
    '',
  );
  table(
    ['system', 'median µs', '× raw', 'p99 µs', 'steady messages delivered/s', '× raw'],
    SYSTEMS.map((system) => {
      const entry = systems[system];
      return [LABELS[system], integer(entry.latencyMedian), ratio(entry.latencyMedian, raw.latencyMedian), integer(entry.latencyP99), integer(entry.steadyPerSecond), ratio(entry.steadyPerSecond, raw.steadyPerSecond)];
    }),
  );
  lines.push('## History: one poll after a cursor (longpoll-kit, in process)', '', 'Broker.poll with a cursor and wait 0 on a channel whose MemoryEngine history is full, at capacity 100 and 10,000: both histories filled first, then timed in alternating batches of 500 polls, so that both pay the same garbage collector; the median of the rounds.', '');
  const behinds = [...new Set(history.map((row) => row.behind))];
  table(
    ['messages after the cursor', 'capacity 100 (µs/poll)', 'capacity 10,000 (µs/poll)', '10,000 vs 100'],
    behinds.map((behind) => {
      const small = history.find((row) => row.behind === behind && row.capacity === 100)?.nsPerPoll ?? Number.NaN;
      const large = history.find((row) => row.behind === behind && row.capacity === 10_000)?.nsPerPoll ?? Number.NaN;
      return [String(behind), fixed(small / 1000, 2), fixed(large / 1000, 2), `${(large / small).toFixed(2)}×`];
    }),
  );
  lines.push('## Targets (issue 6)', '');
  table(
    ['target', 'measured', 'holds'],
    targets(summary).map(([name, value, holds]) => [name, value, holds ? 'yes' : '**no**']),
  );
  return `${lines.join('\n')}\n`;
}

const escape = (text) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * Four panels of horizontal bars, one bar per system; longpoll-kit stands out, raw is grey.
 * @param {ReturnType<typeof summarise>} summary
 * @param {{ machine: Record<string, string>, command: string }} context
 */
export function renderSvg(summary, context) {
  const { systems, sizes } = summary;
  const top = sizes.at(-1);
  const panels = [
    { title: `Fanout to ${integer(top)} held polls (responses/s, higher is better)`, value: (s) => s.sizes[top].responsesPerSecond, format: integer },
    { title: `Server CPU per response at N = ${integer(top)} (µs, lower is better)`, value: (s) => s.sizes[top].cpuPerResponse, format: (v) => fixed(v) },
    { title: `Heap per held poll at N = ${integer(top)} (bytes, lower is better)`, value: (s) => s.sizes[top].heapPerPoll, format: integer },
    { title: 'Median publish→receipt latency (µs, lower is better)', value: (s) => s.latencyMedian, format: integer },
  ];
  const width = 760;
  const labelWidth = 190;
  const barArea = width - labelWidth - 150;
  const rowHeight = 22;
  const panelHeight = 34 + SYSTEMS.length * rowHeight + 16;
  const height = 56 + panels.length * panelHeight;
  const colour = (system) => (system === 'kit' ? '#d9480f' : system === 'raw' ? '#868e96' : '#4c6ef5');
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="16" font-weight="bold">longpoll-kit vs raw node:http and peers</text>`,
    `<text x="16" y="42" fill="#495057">${escape(`${context.command} · ${context.machine.cpu} · Node ${context.machine.node}`)}</text>`,
  ];
  panels.forEach((panel, index) => {
    const y0 = 56 + index * panelHeight;
    out.push(`<text x="16" y="${y0 + 20}" font-weight="bold">${escape(panel.title)}</text>`);
    const values = SYSTEMS.map((system) => panel.value(systems[system]));
    const max = Math.max(...values.filter(Number.isFinite), 1);
    SYSTEMS.forEach((system, row) => {
      const y = y0 + 34 + row * rowHeight;
      const value = values[row];
      const length = Number.isFinite(value) ? Math.max(1, (value / max) * barArea) : 0;
      out.push(
        `<text x="${labelWidth - 8}" y="${y + 12}" text-anchor="end">${escape(LABELS[system])}</text>`,
        `<rect x="${labelWidth}" y="${y}" width="${length.toFixed(1)}" height="${rowHeight - 6}" fill="${colour(system)}"/>`,
        `<text x="${(labelWidth + length + 6).toFixed(1)}" y="${y + 12}">${escape(panel.format(value))}${system === 'raw' ? '' : ` (${ratio(value, values[0])})`}</text>`,
      );
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
