/**
 * `npm run bench:micro`: builds, then runs every micro-benchmark of this folder, each in a fresh
 * process (so that one file's JIT and garbage do not weigh on the next), and prints a table of
 * the ratios. `-- --runs 3` runs every file three times and reports the median ratio of each
 * comparison; `-- --write` also puts the table in docs/benchmarks.md, under "Micro-benchmarks".
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { format, median } from './harness.js';

/** Every micro-benchmark, in the order of the table. */
export const FILES = [
  'pooled-random.js',
  'iso-string.js',
  'cursor-reuse.js',
  'empty-read.js',
  'cursor-parse.js',
  'query-parse.js',
  'frozen-copy.js',
  'freeze.js',
  'answer-bytes.js',
  'jitter-steps.js',
  'many-wake.js',
  'stream-repoll.js',
  'stream-keep.js',
  'sse-framed.js',
  'expiry-lists.js',
  'channel-keys.js',
  'composite-decode.js',
  'many-held.js',
  'many-park.js',
  'waiter-list.js',
  'shared-response.js',
  'sync-poll.js',
];

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', '..');
const runsAt = process.argv.indexOf('--runs');
const runs = runsAt === -1 ? 1 : Number(process.argv[runsAt + 1]);
if (!Number.isSafeInteger(runs) || runs < 1) throw new Error('--runs takes a positive integer');
const write = process.argv.includes('--write');
const started = Date.now();

/** Per file, per comparison title: the results of every run. */
const results = new Map();
for (let run = 0; run < runs; run++) {
  for (const file of FILES) {
    const output = execFileSync(process.execPath, ['--expose-gc', join(here, file), '--json'], { encoding: 'utf8' });
    for (const line of output.split('\n')) {
      if (line.startsWith('@micro ')) {
        const result = JSON.parse(line.slice('@micro '.length));
        const key = `${file}\n${result.title}`;
        if (!results.has(key)) results.set(key, { file, title: result.title, production: result.production.name, alternative: result.alternative.name, ratios: [], ns: [[], []] });
        const entry = results.get(key);
        entry.ratios.push(result.ratio);
        entry.ns[0].push(result.production.ns);
        entry.ns[1].push(result.alternative.ns);
      } else if (line !== '') {
        console.log(line);
      }
    }
  }
}

const rows = [...results.values()].map((entry) => ({ ...entry, ratio: median(entry.ratios) }));
const seconds = Math.round((Date.now() - started) / 1000);
const table = [
  `Command: \`npm run bench:micro -- --runs ${runs}\` · ${new Date().toISOString()} · ${seconds} s  `,
  `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'CPU'}, Node ${process.version}  `,
  `Times: CPU time per operation, median. Ratio: time of the alternative / time of what src/ does (above 1: src/ is faster), ` +
    `median of ${runs === 1 ? 'the rounds of one run' : `${runs} runs (each the median of its rounds; in brackets)`}.`,
  '',
  '| file | comparison | src/ does | time | alternative | time | ratio |',
  '| --- | --- | --- | ---: | --- | ---: | ---: |',
  ...rows.map(
    ({ file, title, production, alternative, ratio, ratios, ns }) =>
      `| ${file} | ${title} | ${production} | ${format(median(ns[0]))} | ${alternative} | ${format(median(ns[1]))} | ` +
      `**${ratio.toFixed(2)}×**${runs > 1 ? ` (${ratios.map((r) => r.toFixed(2)).join(', ')})` : ''} |`,
  ),
].join('\n');
console.log(`\n${table}`);

if (write) {
  const path = join(root, 'docs', 'benchmarks.md');
  const doc = readFileSync(path, 'utf8');
  const begin = '<!-- micro:begin (bench/micro/run.js --write) -->';
  const end = '<!-- micro:end -->';
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  if (from === -1 || to === -1) throw new Error(`docs/benchmarks.md has no ${begin} … ${end} block`);
  writeFileSync(path, `${doc.slice(0, from + begin.length)}\n${table}\n${doc.slice(to)}`);
  console.log('bench:micro: wrote the table in docs/benchmarks.md');
}
