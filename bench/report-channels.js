/**
 * The sections of bench/many.js and bench/sse.js in the report: Markdown tables with ratios from
 * the same run, and their targets checked.
 */

const integer = (value) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : 'n/a');
const fixed = (value, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
const ratio = (value, base) => (Number.isFinite(value) && base > 0 ? `${(value / base).toFixed(2)}×` : 'n/a');
const holds = (ok) => (ok ? 'yes' : '**no**');

/** @param {string[]} lines @param {string[]} header @param {string[][]} rows */
function table(lines, header, rows) {
  lines.push(`| ${header.join(' | ')} |`, `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`);
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  lines.push('');
}

/**
 * @param {Awaited<ReturnType<typeof import('./many.js').measureMany>> | { error: string }} result
 */
export function renderMany(result) {
  const lines = ['## Many channels in one request: server CPU per answer', ''];
  if ('error' in result) return `${lines.join('\n')}Not measured: ${result.error}\n`;
  const { plan, summary, ratios, ratio: value } = result;
  lines.push(
    `${integer(plan.clients)} clients re-poll at once after every answer, resuming from their cursor. ` +
      '**10 channels**: each client polls 10 of 40 channels in one request (`GET /channels?channels=…`), a different list per client (320 distinct sets of channels; every channel followed by a quarter of the clients), with its composite cursor. ' +
      '**1 channel**: the same clients on 4 channels, one each (`GET /channels/room.n`). ' +
      'The server publishes round-robin on every channel, the next message only once all polls are held again, so each publish wakes a quarter of the clients in both and every answer carries one message. ' +
      `Server CPU time (process.cpuUsage in the server process) over ${integer(plan.publishes)} publishes (${integer((plan.publishes * plan.clients) / 4)} answers) per turn, after ${plan.warmup} for warm-up, divided by the answers: ` +
      'writing each answer and reading and parking the re-poll that follows it. ' +
      `${plan.rounds} round${plan.rounds === 1 ? '' : 's'}, the two turns alternating${plan.pinned ? ', the server on CPU 0 and the load generator on CPU 1 (taskset)' : ''}; medians. Answers per second are bounded by the load generator and are given for scale only.`,
    '',
  );
  table(
    lines,
    ['poll', 'server CPU µs/answer', '× 1 channel', 'answers/s', 'messages/answer'],
    [
      ['1 channel', fixed(summary.single.cpuPerAnswer), '1.00×', integer(summary.single.answersPerSecond), fixed(summary.single.messagesPerAnswer, 2)],
      ['10 of 40 channels', fixed(summary.many.cpuPerAnswer), ratio(summary.many.cpuPerAnswer, summary.single.cpuPerAnswer), integer(summary.many.answersPerSecond), fixed(summary.many.messagesPerAnswer, 2)],
    ],
  );
  lines.push(`Ratio of each round's pair: ${ratios.map((r) => `${r.toFixed(2)}×`).join(', ')}; median ${value.toFixed(2)}×.`, '');
  table(lines, ['target', 'measured', 'holds'], [['server CPU per answer, 10 channels against 1: ≤ 1.5×', `${value.toFixed(2)}×`, holds(value <= 1.5)]]);
  return `${lines.join('\n')}`;
}

/**
 * @param {Awaited<ReturnType<typeof import('./sse.js').measureSse>> | { error: string }} result
 */
export function renderSse(result) {
  const lines = ['## Server-Sent Events: one message to N open streams', ''];
  if ('error' in result) return `${lines.join('\n')}Not measured: ${result.error}\n`;
  const { plan, summary } = result;
  const { raw, kit } = summary;
  const sizes = plan.sizes;
  lines.push(
    'longpoll-kit: Broker + longpoll-kit/node, N streams (`GET /channels/bench`, `Accept: text/event-stream`, resuming from the newest event id). ' +
      'Raw node:http: N responses held open in an array and one pre-serialised event written to each (bench/servers/raw-sse.js), the stream started and the event shaped as longpoll-kit\'s (`id:` a cursor, `event: message`, the message JSON), so the load generator reads the same bytes. ' +
      'Events per second from the publish until the load generator (bench/sse-load.js: one node:net socket per stream, chunked decoding, every data JSON parsed) received the last; server CPU time over that window per event; heap and RSS per open stream after two forced collections, against the 50 streams of the warm-up, which first takes 40 fanouts (so that the code of both systems is compiled). ' +
      `${plan.rounds} round${plan.rounds === 1 ? '' : 's'}, raw and longpoll-kit alternating, each turn fresh processes${plan.pinned ? ' (the server on CPU 0, the load generator on CPU 1: taskset)' : ''}; medians` +
      (plan.bestOf && Object.keys(plan.bestOf).length > 0
        ? `; the fastest of ${Object.entries(plan.bestOf).map(([size, count]) => `${count} at N = ${integer(Number(size))}`).join(', ')} in each turn.`
        : '.') +
      ' The event published right after the forced collections is not timed (as for the polls).',
    '',
  );
  const row = (label, pick, format, base) =>
    [label, ...sizes.flatMap((size) => [format(pick(size)), base ? ratio(pick(size), base(size)) : '1.00×'])];
  const header = ['system', ...sizes.flatMap((size) => [`N = ${integer(size)}`, '× raw'])];
  lines.push('Fanout, events per second:', '');
  table(lines, header, [
    row('raw node:http (the limit)', (s) => raw[s].eventsPerSecond, integer),
    row('longpoll-kit', (s) => kit[s].eventsPerSecond, integer, (s) => raw[s].eventsPerSecond),
  ]);
  // Turns alternate raw, kit: each round's pair ran within seconds of each other.
  const pairs = (field) =>
    sizes.map((size) => {
      const values = [];
      for (let round = 0; round < plan.rounds; round++) {
        const [a, b] = result.turns.slice(round * 2, round * 2 + 2);
        if (a?.system === 'raw' && b?.system === 'kit') values.push(b.sizes[size][field] / a.sizes[size][field]);
      }
      return `N = ${integer(size)}: ${values.map((v) => `${v.toFixed(2)}×`).join(', ')}`;
    });
  lines.push(
    `Fanout of longpoll-kit against raw in each round's pair of turns (${pairs('eventsPerSecond').join('; ')}): a fanout lasts tens to hundreds of milliseconds, and the load generator and the other work on this shared machine move it more than the server does; the CPU time per event is the steadier figure.`,
    '',
  );
  lines.push('Server CPU time per event (µs):', '');
  table(lines, header, [
    row('raw node:http (the limit)', (s) => raw[s].cpuPerEvent, (v) => fixed(v)),
    row('longpoll-kit', (s) => kit[s].cpuPerEvent, (v) => fixed(v), (s) => raw[s].cpuPerEvent),
  ]);
  lines.push('Memory per open stream (bytes):', '');
  table(
    lines,
    ['system', ...sizes.flatMap((size) => [`heap N = ${integer(size)}`, `RSS N = ${integer(size)}`])],
    [
      ['raw node:http (the limit)', ...sizes.flatMap((s) => [integer(raw[s].heapPerStream), integer(raw[s].rssPerStream)])],
      ['longpoll-kit', ...sizes.flatMap((s) => [integer(kit[s].heapPerStream), integer(kit[s].rssPerStream)])],
    ],
  );
  const rows = [];
  for (const size of sizes) {
    const value = kit[size].eventsPerSecond / raw[size].eventsPerSecond;
    rows.push([`SSE fanout at N = ${integer(size)}: ≥ 0.95× raw`, `${value.toFixed(2)}× raw`, holds(value >= 0.95)]);
  }
  for (const size of sizes) {
    const extra = kit[size].heapPerStream - raw[size].heapPerStream;
    rows.push([`heap per open stream at N = ${integer(size)}: ≤ raw + 1 KB`, `raw ${extra >= 0 ? '+' : '−'} ${integer(Math.abs(extra))} B`, holds(extra <= 1024)]);
  }
  table(lines, ['target', 'measured', 'holds'], rows);
  return `${lines.join('\n')}`;
}
