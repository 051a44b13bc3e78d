/**
 * The soak's report: docs/soak.md (parameters, verdict per criterion, every sample) and
 * docs/soak.svg (heap, RSS and held polls over time), both written by bench/soak/run.js.
 */

/**
 * One 10 s sample: the server's own figures, then the pollers' running totals.
 * @typedef {{
 *   t: number, heapUsed: number, rss: number, waiters: number, leases: number, cpu: number,
 *   messages?: number, destroyed?: number, clientHeld?: number,
 * }} Row
 */

const MB = 2 ** 20;
const number = (value) => value.toLocaleString('en-US');

/** @param {any} result what run.js gathered */
export function renderMarkdown(result) {
  const { params, limits, counts } = result;
  const lines = [
    `# Soak: ${number(params.clients)} long polls and event streams for ${params.minutes} minutes`,
    '',
    `**${result.passed ? 'Passed' : 'FAILED'}** on ${result.date.slice(0, 10)} (started ${result.date}, ${Math.round(result.duration / 60)} minutes in all).`,
    '',
    'Written by `npm run soak` (bench/soak/run.js); it is not part of `npm test`. Run it again after any',
    'change to the broker, the engine, the limiter or an adapter, and commit this file and',
    '[soak.svg](soak.svg) with the result.',
    '',
    '## What runs',
    '',
    `- **Server**, a process of its own (bench/soak/server.js, \`node --expose-gc\`): the built package, \`Broker\` with a default \`MemoryEngine\`, the Node adapter \`longpoll-kit/node\` under \`/channels\` on 127.0.0.1, a \`ConnectionLimiter\` (perClient ${number(limits.perClient)}, perChannel ${number(limits.perChannel)}, total ${number(limits.total)}).`,
    `- **Pollers**, ${number(params.clients)} raw keep-alive sockets in one client process (bench/soak/clients.js), poller *i* on channel \`c{i mod ${params.channels}}\` from source address 127.0.1.{1 + i mod ${params.addresses}}, so the limiter sees ${params.addresses} clients of ${number(Math.ceil(params.clients / params.addresses))} polls each. Of every 100 pollers:`,
    `  - ${100 - (params.streams ?? 0) - (params.many ?? 0)} poll their channel, re-polling with \`wait=${params.wait}\` and the cursor of their last answer as soon as an answer arrives;`,
    `  - ${params.many ?? 0} poll ${params.manyChannels ?? 3} channels at once (\`GET /channels?channels=…\`, the channel *i* and others spread evenly from it) in the same way, with the composite cursor;`,
    `  - ${params.streams ?? 0} read an event stream (\`Accept: text/event-stream\`, half of one channel, half of ${params.manyChannels ?? 3}), which waits up to ${params.wait} s (\`heartbeat\`) between messages and ends by itself after \`maxStream\` ${params.maxStream ?? 300} s less a jitter; the poller resumes it on the same socket, and after a destroyed socket on a new one, with \`Last-Event-ID\`.`,
    `- **Publishing**: ${params.rate} messages per second, one channel after the other, each message carrying its channel's next \`seq\`.`,
    `- **Destroying**: ${params.destroyShare * 100}% of the pollers per minute (a few every second), each chosen among polls out for at least 200 ms, have their socket destroyed while the server holds the poll; each comes back after up to 500 ms on a new socket from the same address, resuming from its cursor.`,
    `- **Sampling**: every ${params.interval / 1000} s the server collects garbage twice, then sends the driver (bench/soak/run.js) over IPC its \`heapUsed\`, \`rss\`, \`broker.stats().waiters\` (taken before the collection), \`limiter.stats().total\` (leases) and its CPU use since the previous sample.`,
    '- **Checks by the pollers**: every message is the next `seq` of its channel for the poller (no gap, no duplicate, no reordering, across reconnections and resumed streams too; a stream\'s `reset` counts as a gap), every poller of a channel sees the same message id for a `seq`, and at the end every poller has the last message of each of its channels.',
    '',
    '## Run',
    '',
    `- Date: ${result.date}`,
    `- Code: ${result.code}`,
    `- Machine: ${result.machine} (shared with other work while it ran)`,
    `- Command: \`${result.command}\` (the script raises \`ulimit -n\` to 19,000 first)`,
    `- Parameters: ${params.minutes} minutes after the ramp, ${number(params.clients)} pollers, ${params.channels} channels, wait ${params.wait} s, ${params.rate} messages/s, ${params.destroyShare * 100}% destroyed per minute, ${params.addresses} source addresses, ${params.streams}% streams and ${params.many}% polls of ${params.manyChannels} channels, streams of ${params.maxStream} s at most.`,
    `- Totals: ${number(result.publishedTotal)} messages published; ${number(counts.messages)} received in ${number(counts.answers)} poll answers (${number(counts.deliveries)} with messages, the others timeouts); ${number(counts.destroyed)} sockets destroyed mid-poll, ${number(counts.reconnects)} reconnections; ${number(counts.streamsOpened ?? 0)} event streams opened, which brought ${number(counts.streamMessages ?? 0)} of the messages as events, ${number(counts.heartbeats ?? 0)} heartbeats, ${number(counts.streamsEnded ?? 0)} streams ended by the server and resumed.`,
    '',
    '## Verdict',
    '',
    '| criterion | measured | result |',
    '| --- | --- | --- |',
    ...result.criteria.map((criterion) => `| ${criterion.name} | ${criterion.value} | ${criterion.pass ? 'pass' : '**FAIL**'} |`),
    '',
  ];
  if (result.problems.length > 0) {
    lines.push('First problems the pollers saw:', '', '```', ...result.problems, '```', '');
  }
  lines.push(
    '## Samples',
    '',
    '![Heap, RSS and held polls over the run](soak.svg)',
    '',
    '| t (s) | heap (MB) | RSS (MB) | waiters | leases | server CPU | messages received | destroyed |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...result.rows.map(
      (/** @type {Row} */ row) =>
        `| ${row.t} | ${(row.heapUsed / MB).toFixed(1)} | ${(row.rss / MB).toFixed(1)} | ${number(row.waiters)} | ${number(row.leases)} | ${(row.cpu * 100).toFixed(0)}% | ${number(row.messages ?? 0)} | ${number(row.destroyed ?? 0)} |`,
    ),
    '',
  );
  return lines.join('\n');
}

/** A round step for about `count` ticks up to `max`. */
function step(max, count) {
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  return ([1, 2, 5, 10].find((factor) => factor * power >= raw) ?? 10) * power;
}

/**
 * A line chart, hand-made: time across, MB on the left (heap, RSS), held polls on the right
 * (waiters, leases, and the 95% floor every sample must stay above).
 * @param {Row[]} rows
 * @param {{ clients: number, minutes: number, heldShare: number }} params
 */
export function renderSvg(rows, params) {
  const width = 860;
  const height = 400;
  const left = 70;
  const right = 790;
  const top = 50;
  const bottom = 340;
  const seconds = params.minutes * 60;
  const memoryStep = step(Math.max(...rows.map((row) => row.rss)) / MB, 5);
  const memoryMax = memoryStep * Math.ceil((Math.max(...rows.map((row) => row.rss)) / MB) * 1.1 / memoryStep);
  const heldStep = step(params.clients, 5);
  const heldMax = heldStep * Math.ceil((params.clients * 1.1) / heldStep);
  const x = (t) => (left + ((right - left) * t) / seconds).toFixed(1);
  const yMemory = (bytes) => (bottom - ((bottom - top) * bytes) / MB / memoryMax).toFixed(1);
  const yHeld = (count) => (bottom - ((bottom - top) * count) / heldMax).toFixed(1);
  const line = (values, y, color, dash = '') =>
    `<polyline fill="none" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''} points="${rows
      .map((row, i) => `${x(row.t)},${y(values[i])}`)
      .join(' ')}"/>`;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">Soak: ${number(params.clients)} pollers, ${params.minutes} minutes (a sample every 10 s)</text>`,
  ];
  for (let mb = 0; mb <= memoryMax; mb += memoryStep) {
    parts.push(
      `<line x1="${left}" x2="${right}" y1="${yMemory(mb * MB)}" y2="${yMemory(mb * MB)}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${Number(yMemory(mb * MB)) + 4}" text-anchor="end">${mb} MB</text>`,
    );
  }
  for (let held = 0; held <= heldMax; held += heldStep) {
    parts.push(`<text x="${right + 6}" y="${Number(yHeld(held)) + 4}">${number(held)}</text>`);
  }
  for (let minute = 0; minute <= params.minutes; minute++) {
    parts.push(
      `<line x1="${x(minute * 60)}" x2="${x(minute * 60)}" y1="${bottom}" y2="${bottom + 5}" stroke="#333"/>`,
      `<text x="${x(minute * 60)}" y="${bottom + 18}" text-anchor="middle">${minute}</text>`,
    );
  }
  parts.push(
    `<text x="${(left + right) / 2}" y="${bottom + 36}" text-anchor="middle">minutes after the ramp</text>`,
    `<text transform="translate(16 ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle">memory after GC</text>`,
    `<text transform="translate(${width - 10} ${(top + bottom) / 2}) rotate(90)" text-anchor="middle">held polls</text>`,
    `<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" stroke="#333"/>`,
    `<line x1="${left}" x2="${right}" y1="${yHeld(params.clients * params.heldShare)}" y2="${yHeld(params.clients * params.heldShare)}" stroke="#2a9d4b" stroke-dasharray="2 4"/>`,
    line(rows.map((row) => row.rss), yMemory, '#e07b00'),
    line(rows.map((row) => row.heapUsed), yMemory, '#1f5fbf'),
    line(rows.map((row) => row.waiters), yHeld, '#2a9d4b'),
    line(rows.map((row) => row.leases), yHeld, '#7a3db8', '6 4'),
  );
  const legend = [
    ['#e07b00', '', 'RSS (left)'],
    ['#1f5fbf', '', 'heap used (left)'],
    ['#2a9d4b', '', 'waiters (right)'],
    ['#7a3db8', '6 4', 'leases (right)'],
    ['#2a9d4b', '2 4', `${params.heldShare * 100}% of the pollers`],
  ];
  legend.forEach(([color, dash, label], i) => {
    const at = left + i * 150;
    parts.push(
      `<line x1="${at}" x2="${at + 24}" y1="36" y2="36" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
      `<text x="${at + 30}" y="40">${label}</text>`,
    );
  });
  parts.push('</svg>', '');
  return parts.join('\n');
}
