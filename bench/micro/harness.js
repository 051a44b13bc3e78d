/**
 * What every micro-benchmark shares: `compare` runs a production variant and its alternative
 * alternately, in rounds of a fixed number of operations, and prints the median over rounds of
 * alternative / production time (above 1: production is faster). Alternating rounds make drift on
 * a shared machine hit both variants alike; the median ignores a round that a burst of other work
 * slowed down. Every variant returns a number made from its results, summed into a checksum that
 * is printed, so that no work can be optimised away.
 *
 * `node bench/micro/<file>.js` prints one line per comparison; with `--json` it also prints each
 * comparison as one JSON line starting with `@micro ` (bench/micro/run.js reads those).
 */
const json = process.argv.includes('--json');
let checksum = 0;
let compared = false;

/**
 * @typedef {object} Variant
 * @property {string} name what it does, in a few words
 * @property {(n: number) => number} run does the operation `n` times; returns a number made from the results
 */

/**
 * Times `variant.run(n)` once, in nanoseconds per operation.
 * @param {Variant} variant
 * @param {number} n
 */
function timeOf(variant, n) {
  const start = cpuNow();
  checksum += variant.run(n);
  return ((cpuNow() - start) * 1e6) / n;
}

/**
 * This process's CPU time in milliseconds: on a shared machine, time spent descheduled would
 * count in wall-clock time, not here.
 */
export function cpuNow() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * How many operations of `variant` take about `ms`.
 * @param {Variant} variant
 * @param {number} ms
 */
function sizeOf(variant, ms) {
  let n = 1;
  for (;;) {
    const start = cpuNow();
    checksum += variant.run(n);
    const elapsed = cpuNow() - start;
    if (elapsed >= ms / 4 || n >= 1e8) return Math.max(1, Math.round((n * ms) / Math.max(elapsed, 1e-3)));
    n *= 2;
  }
}

/** The median of `values`. @param {number[]} values */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Compares `production` with `alternative` and prints the ratio.
 * @param {string} title what is compared, and at which size
 * @param {Variant} production what src/ does
 * @param {Variant} alternative what it would do without the trick
 * @param {{ rounds?: number, roundMs?: number }} [options] rounds, and about how long each variant runs per round
 */
export function compare(title, production, alternative, { rounds = 15, roundMs = 20 } = {}) {
  compared = true;
  // Warm both up (the JIT), then size each variant's share of a round to about roundMs.
  for (const variant of [production, alternative, production, alternative]) checksum += variant.run(64);
  const np = sizeOf(production, roundMs);
  const na = sizeOf(alternative, roundMs);
  const times = { production: [], alternative: [] };
  const ratios = [];
  for (let round = 0; round < rounds; round++) {
    // Alternate which goes first, so that neither always runs just after a collection.
    const first = round % 2 === 0;
    const a = first ? timeOf(production, np) : timeOf(alternative, na);
    const b = first ? timeOf(alternative, na) : timeOf(production, np);
    const [p, q] = first ? [a, b] : [b, a];
    times.production.push(p);
    times.alternative.push(q);
    ratios.push(q / p);
  }
  return finish(title, production, alternative, times, ratios);
}

/**
 * {@link compare} for variants that settle asynchronously (the broker's wake-ups go through
 * promises): `run(n)` returns a promise of its number, and each variant does `n` operations per
 * round, `n` given by the caller. Time is CPU time, as for `compare`.
 * @param {string} title
 * @param {{ name: string, run: (n: number) => Promise<number> }} production
 * @param {{ name: string, run: (n: number) => Promise<number> }} alternative
 * @param {{ n: number, rounds?: number }} options
 */
export async function compareAsync(title, production, alternative, { n, rounds = 15 }) {
  compared = true;
  const timeAsync = async (variant) => {
    const start = cpuNow();
    checksum += await variant.run(n);
    return ((cpuNow() - start) * 1e6) / n;
  };
  for (const variant of [production, alternative, production, alternative]) await timeAsync(variant);
  const times = { production: [], alternative: [] };
  const ratios = [];
  for (let round = 0; round < rounds; round++) {
    const first = round % 2 === 0;
    const a = await timeAsync(first ? production : alternative);
    const b = await timeAsync(first ? alternative : production);
    const [p, q] = first ? [a, b] : [b, a];
    times.production.push(p);
    times.alternative.push(q);
    ratios.push(q / p);
  }
  return finish(title, production, alternative, times, ratios);
}

/**
 * The medians of a comparison's rounds, printed.
 * @param {string} title
 * @param {{ name: string }} production
 * @param {{ name: string }} alternative
 * @param {{ production: number[], alternative: number[] }} times ns per operation, per round
 * @param {number[]} ratios alternative / production, per round
 */
function finish(title, production, alternative, times, ratios) {
  const result = {
    title,
    production: { name: production.name, ns: median(times.production) },
    alternative: { name: alternative.name, ns: median(times.alternative) },
    ratio: median(ratios),
    rounds: ratios.length,
  };
  report(result);
  return result;
}

/**
 * Prints a comparison.
 * @param {{ title: string, production: { name: string, ns: number }, alternative: { name: string, ns: number }, ratio: number, rounds: number }} result
 */
export function report(result) {
  const { title, production, alternative, ratio, rounds } = result;
  console.log(
    `${title}\n  production  ${format(production.ns).padStart(14)}  ${production.name}\n  alternative ${format(alternative.ns).padStart(14)}  ${alternative.name}\n` +
      `  alternative / production: ${ratio.toFixed(2)}x (median of ${rounds} rounds)`,
  );
  if (json) console.log(`@micro ${JSON.stringify(result)}`);
}

/** `ns` nanoseconds, in ns or µs. @param {number} ns */
export function format(ns) {
  return ns >= 10_000 ? `${(ns / 1000).toFixed(1)} µs/op` : `${ns.toFixed(1)} ns/op`;
}

process.on('exit', () => {
  if (compared && !json) console.log(`(checksum ${checksum})`);
});
