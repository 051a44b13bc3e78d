/**
 * The wait of an HTTP poll (`jitter`, http/protocol.ts): up to a sixteenth less, in 32 steps.
 * Node keeps one timer list per distinct duration: a timer of a duration that has a list is
 * appended to it, a new duration makes a list and puts it in a priority queue. Measured: 10,000
 * polls with the default 25 s wait each set a timer and clear it (their answer came), with
 * durations from `jitter` against a continuous jitter (10,000 distinct durations) and the
 * continuous jitter rounded to whole milliseconds (about 1,500).
 */
import { jitter } from '../../dist/http/protocol.js';
import { compare } from './harness.js';

const POLLS = 10_000;
const WAIT = 25_000;
const noop = () => {};

/** The waits of 10,000 polls, drawn once. */
function waits(of) {
  return Float64Array.from({ length: POLLS }, () => of(Math.random()));
}

/** Sets and clears a timer for every wait, `n` times over. */
function timers(durations) {
  return (n) => {
    const held = new Array(POLLS);
    let sum = 0;
    for (let round = 0; round < n; round++) {
      for (let i = 0; i < POLLS; i++) held[i] = setTimeout(noop, durations[i]);
      for (let i = 0; i < POLLS; i++) {
        sum += held[i]._idleTimeout;
        clearTimeout(held[i]);
      }
    }
    return sum;
  };
}

const production = { name: 'jitter(25000): 32 steps', run: timers(waits((random) => jitter(WAIT, random))) };
compare(`10,000 timers set and cleared (time per 10,000), against a continuous jitter`, production, {
  name: 'continuous jitter',
  run: timers(waits((random) => WAIT - random * (WAIT / 16))),
});
compare(`10,000 timers set and cleared (time per 10,000), against a continuous jitter in whole ms`, production, {
  name: 'continuous jitter, whole ms',
  run: timers(waits((random) => Math.round(WAIT - random * (WAIT / 16)))),
});
