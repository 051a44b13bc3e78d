import type { Cursor } from './engine.js';
import { DEFAULT_LIMIT } from './limits.js';
import { encodeCursors } from './composite-cursor.js';
import type { Expiring, ExpiryList } from './expiry.js';
import { PollTicket, timedOut, type HeldPoll } from './poll.js';

/** The channels of one broker and the number of polls it holds, shared with its waiters. */
export interface Registry<T> {
  readonly channels: Map<string, ChannelState<T>>;
  held: number;
  /** What the broker does when a held poll's wait runs out. */
  readonly expire: (waiter: Waiter<T>) => void;
  /** What the broker does when a held many-channel poll's list says its wait ran out. */
  readonly expireMany: (waiter: ManyWaiter<T>) => void;
  /** Parked many-channel polls, by the composite cursor of their answer (see {@link ManyWaiter.park}). */
  readonly parked: Map<Cursor, ManyWaiter<T>>;
}

/** What a broker keeps per channel while the channel has waiters or polls reading. */
export interface ChannelState<T> {
  readonly channel: string;
  readonly waiters: WaiterList<T>;
  /** Bumped by every notification: a poll that read before a bump reads again. */
  version: number;
  /** Polls between their first read and their registration as waiters. */
  reading: number;
  /** Whether a drain is answering this channel's waiters. */
  draining: boolean;
  /** A notification came while the drain was running: it reads once more. */
  dirty: boolean;
  /** Polls over many channels held on this one among others. */
  readonly many: HeldOnChannel<T>;
}

/** Whether nothing needs a channel's state any more. */
export function isIdle<T>(state: ChannelState<T>): boolean {
  return state.waiters.size === 0 && state.many.size === 0 && state.reading === 0 && !state.draining;
}

/**
 * A held poll: where it waits, when its wait runs out (its place in an {@link ExpiryList}), and
 * the ticket its answer goes to. The ticket points back at it (`ticket.held`) so that a closed
 * connection or an aborted signal forgets it at once.
 */
export class Waiter<T> implements HeldPoll, Expiring {
  expiresAt = 0;
  previous: Expiring | undefined = undefined;
  next: Expiring | undefined = undefined;
  list: ExpiryList | undefined = undefined;
  /** Its place in its channel's {@link WaiterList}; -1 once taken off. */
  place = -1;

  constructor(
    /** Where its next message would be; moved by an answer that leaves it held (`ticket.keeps`). */
    public cursor: Cursor,
    readonly limit: number,
    readonly state: ChannelState<T>,
    readonly registry: Registry<T>,
    readonly ticket: PollTicket<T>,
  ) {
    state.waiters.add(this);
    registry.held++;
    ticket.held = this;
  }

  /**
   * Takes the waiter off its channel and clears its timer, so that nothing else answers it;
   * false if something already did.
   */
  detach(): boolean {
    const { state, registry } = this;
    if (!state.waiters.delete(this)) return false;
    this.list?.remove(this);
    registry.held--;
    this.ticket.held = undefined;
    if (isIdle(state)) registry.channels.delete(state.channel);
    return true;
  }

  /** Whether it is held: on its channel's list. */
  get held(): boolean {
    return this.place >= 0;
  }

  /** {@inheritDoc HeldPoll.fail} */
  fail(reason: unknown): void {
    if (this.detach()) this.ticket.reject(reason);
  }

  /** {@inheritDoc HeldPoll.release} */
  release(): void {
    this.detach();
  }

  /** {@inheritDoc HeldPoll.expire} */
  expire(): void {
    if (this.detach()) this.ticket.resolve(timedOut(this.cursor));
  }

  /** {@inheritDoc Expiring.expired} */
  expired(): void {
    this.registry.expire(this);
  }
}

/**
 * The polls held on one channel, in an array: a poll is added with a push and taken off by
 * moving the last one into its place, each waiter knowing its place. A publish takes every poll
 * of a channel off and their re-polls hold them again; a `Set` does the same with hashing, and
 * shrinks its table as it empties (bench/micro/waiter-list.js). No order is kept.
 */
export class WaiterList<T> {
  readonly #waiters: Waiter<T>[] = [];

  /** How many polls are held. */
  get size(): number {
    return this.#waiters.length;
  }

  /** The `index`th poll held, for `index` below {@link size}. */
  at(index: number): Waiter<T> {
    return this.#waiters[index]!;
  }

  /** Holds `waiter`. */
  add(waiter: Waiter<T>): void {
    waiter.place = this.#waiters.length;
    this.#waiters.push(waiter);
  }

  /** Takes `waiter` off; false if it was not held here. */
  delete(waiter: Waiter<T>): boolean {
    const { place } = waiter;
    if (place < 0 || this.#waiters[place] !== waiter) return false;
    const last = this.#waiters.pop()!;
    if (last !== waiter) {
      this.#waiters[place] = last;
      last.place = place;
    }
    waiter.place = -1;
    return true;
  }

  /** The polls held now, in a new array. */
  snapshot(): Waiter<T>[] {
    return [...this.#waiters];
  }
}

/** Waiters with the same cursor and limit, which one read answers. */
export function groupWaiters<T>(waiters: WaiterList<T>): Iterable<Waiter<T>[]> {
  const groups = new Map<string, Waiter<T>[]>();
  for (let i = 0; i < waiters.size; i++) {
    const waiter = waiters.at(i);
    const key = waiter.limit === DEFAULT_LIMIT ? waiter.cursor : `${waiter.cursor} ${waiter.limit}`;
    const group = groups.get(key);
    if (group) group.push(waiter);
    else groups.set(key, [waiter]);
  }
  return groups.values();
}

/**
 * The many-channel polls held on one channel, in an array: a poll is added with a push and taken
 * off by moving the last one into its place, each poll knowing its place in each of its
 * channels' arrays. A publish takes hundreds of polls off ten channels each and their re-polls
 * put them back; a `Set` per channel does the same with hashing and rehashing
 * (bench/micro/many-held.js).
 */
export class HeldOnChannel<T> {
  readonly #waiters: ManyWaiter<T>[] = [];
  /** For each entry of `#waiters`, the index of this channel among that poll's channels. */
  readonly #which: number[] = [];

  /** How many polls are held. */
  get size(): number {
    return this.#waiters.length;
  }

  /** The polls held, each with the index of this channel among its channels; a copy: answering one takes it off. */
  entries(): (readonly [ManyWaiter<T>, number])[] {
    return this.#waiters.map((waiter, k) => [waiter, this.#which[k]!] as const);
  }

  /** Whether one of its polls is held, not parked. */
  holdsAny(): boolean {
    for (const waiter of this.#waiters) if (waiter.held) return true;
    return false;
  }

  /** Holds `waiter`, whose channel `index` this is. */
  add(waiter: ManyWaiter<T>, index: number): void {
    waiter.places[index] = this.#waiters.length;
    this.#waiters.push(waiter);
    this.#which.push(index);
  }

  /** Takes off `waiter`, whose channel `index` this is. */
  remove(waiter: ManyWaiter<T>, index: number): void {
    const place = waiter.places[index]!;
    const last = this.#waiters.length - 1;
    if (place !== last) {
      const moved = this.#waiters[last]!;
      const movedIndex = this.#which[last]!;
      this.#waiters[place] = moved;
      this.#which[place] = movedIndex;
      moved.places[movedIndex] = place;
    }
    this.#waiters.pop();
    this.#which.pop();
  }
}

/** The ticket of a parked {@link ManyWaiter}: it answered its last one, and holds none. */
class NoTicket extends PollTicket<never> {
  resolve(): void {}
  reject(): void {}
}
const NO_TICKET = new NoTicket();

/**
 * A held poll over many channels: registered on each of them, answered by a publish on any. A
 * publish does not answer it directly: the broker takes it off every channel and reads all of
 * them again (see `Broker`'s `#pollMany`), as one request's answer mixes channels.
 *
 * Answered, it may stay on its channels' lists, parked (see {@link park}), for the re-poll that
 * comes back with the cursor of that answer: nothing of its channels moved while it was parked,
 * so that poll is held again as it is, without reading the channels or registering it anew.
 * The first publish on any of its channels, or its grace period, takes a parked waiter off.
 */
export class ManyWaiter<T> implements HeldPoll, Expiring {
  expiresAt = 0;
  previous: Expiring | undefined = undefined;
  next: Expiring | undefined = undefined;
  list: ExpiryList | undefined = undefined;
  /** Its place in each of its channels' {@link HeldOnChannel}, by the channel's index. */
  readonly places: number[];
  /** Whether it is on its channels' lists, held or parked: until {@link detach}. */
  attached = true;
  /** While parked: the composite cursor of its answer, its key in `registry.parked`. */
  parkedAt: Cursor | undefined = undefined;

  constructor(
    readonly channels: readonly string[],
    /** Where each channel's next message would be, by index: every channel has one by now. */
    readonly cursors: (Cursor | undefined)[],
    readonly limit: number,
    /** When the wait ends, in `Date.now()` time; `Infinity` for never. */
    public deadline: number,
    readonly states: readonly ChannelState<T>[],
    readonly registry: Registry<T>,
    /** Who gets the answer; none while parked. */
    public ticket: PollTicket<T>,
  ) {
    this.places = new Array<number>(states.length).fill(0);
    for (let i = 0; i < states.length; i++) states[i]!.many.add(this, i);
    registry.held++;
    ticket.held = this;
  }

  /** Whether it holds a poll: on its channels' lists and not parked. */
  get held(): boolean {
    return this.attached && this.parkedAt === undefined;
  }

  /**
   * Whether it still waits for the news of the channel a publish woke it on: it is held. One
   * parked there instead is taken off, since that channel moved and its re-poll must read: found
   * on the channel's list, or parked since the wake-up listed it (a publish made during that
   * wake-up, by an `evict` listener of its read, answered it without this channel's news).
   */
  awaits(): boolean {
    if (this.parkedAt !== undefined) this.detach();
    return this.held;
  }

  /**
   * Takes the waiter off every channel and its expiry list, held or parked; false if something
   * already did.
   */
  detach(): boolean {
    const { states, registry } = this;
    if (!this.attached) return false;
    this.attached = false;
    for (let i = 0; i < states.length; i++) {
      const state = states[i]!;
      state.many.remove(this, i);
      if (isIdle(state)) registry.channels.delete(state.channel);
    }
    this.list?.remove(this);
    if (this.parkedAt === undefined) {
      registry.held--;
      this.ticket.held = undefined;
    } else {
      if (registry.parked.get(this.parkedAt) === this) registry.parked.delete(this.parkedAt);
      this.parkedAt = undefined;
    }
    return true;
  }

  /**
   * Answered with the composite cursor `cursor`: stays on its channels' lists without a ticket,
   * kept in `registry.parked` under `cursor`, until {@link resume} holds it again for the
   * re-poll that comes back with that cursor, or {@link detach} forgets it. The caller has
   * checked that it is held and that no other waiter is parked under `cursor`; it answers the
   * ticket, and takes the waiter off its expiry list.
   */
  park(cursor: Cursor): void {
    const { registry } = this;
    registry.held--;
    this.ticket.held = undefined;
    this.ticket = NO_TICKET;
    this.parkedAt = cursor;
    registry.parked.set(cursor, this);
  }

  /** Holds a parked waiter again, for `ticket` until `deadline`; the caller puts it on its expiry list. */
  resume(ticket: PollTicket<T>, deadline: number): void {
    const { registry } = this;
    registry.parked.delete(this.parkedAt!);
    this.parkedAt = undefined;
    this.list?.remove(this);
    this.deadline = deadline;
    this.ticket = ticket;
    ticket.held = this;
    registry.held++;
  }

  /** {@inheritDoc HeldPoll.fail} */
  fail(reason: unknown): void {
    if (this.detach()) this.ticket.reject(reason);
  }

  /** {@inheritDoc HeldPoll.release} */
  release(): void {
    this.detach();
  }

  /** {@inheritDoc HeldPoll.expire} */
  expire(): void {
    if (this.detach()) this.ticket.resolve(timedOut(encodeCursors(this.channels, this.cursors)));
  }

  /** {@inheritDoc Expiring.expired} */
  expired(): void {
    this.registry.expireMany(this);
  }
}
