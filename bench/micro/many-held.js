/**
 * The many-channel polls held on each channel (`HeldOnChannel`, src/waiter.ts): an array with a
 * push to hold a poll and a swap with the last to take it off, each poll knowing its place in
 * each of its channels. The alternative is a `Set` per channel, which the broker used before.
 * The pattern of bench/many.js: 1,000 polls of 10 of 40 channels (a different list each); a
 * publish takes the polls of its channel off all their channels, and their re-polls hold new
 * ones on the same channels.
 */
import { HeldOnChannel } from '../../dist/waiter.js';
import { manyChannels } from '../clients/channels.js';
import { compare } from './harness.js';

const CHANNELS = 40;
const lists = Array.from({ length: 1000 }, (_, i) => manyChannels(i).map((name) => Number(name.split('.')[1])));

/** A held poll: its channels and its places in them. */
const pollOf = (channels) => ({ channels, places: [] });

function arrays() {
  const held = Array.from({ length: CHANNELS }, () => new HeldOnChannel());
  for (const channels of lists) {
    const poll = pollOf(channels);
    channels.forEach((channel, i) => held[channel].add(poll, i));
  }
  let next = 0;
  return (n) => {
    let sum = 0;
    for (let r = 0; r < n; r++) {
      const woken = held[next++ % CHANNELS].entries().map(([poll]) => poll);
      for (const poll of woken) poll.channels.forEach((channel, i) => held[channel].remove(poll, i));
      for (const { channels } of woken) {
        const poll = pollOf(channels);
        channels.forEach((channel, i) => held[channel].add(poll, i));
      }
      sum += woken.length;
    }
    return sum;
  };
}

function sets() {
  const held = Array.from({ length: CHANNELS }, () => new Set());
  for (const channels of lists) {
    const poll = pollOf(channels);
    for (const channel of channels) held[channel].add(poll);
  }
  let next = 0;
  return (n) => {
    let sum = 0;
    for (let r = 0; r < n; r++) {
      const woken = [...held[next++ % CHANNELS]];
      for (const poll of woken) for (const channel of poll.channels) held[channel].delete(poll);
      for (const { channels } of woken) {
        const poll = pollOf(channels);
        for (const channel of channels) held[channel].add(poll);
      }
      sum += woken.length;
    }
    return sum;
  };
}

compare('a publish takes 250 polls off 10 channels each, and their re-polls hold them again', { name: 'HeldOnChannel: arrays', run: arrays() }, { name: 'a Set per channel', run: sets() });
