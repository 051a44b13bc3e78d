/**
 * When held polls expire. Polls held for the same duration expire in the order they were held,
 * so one list per duration, with one timer for the first of its entries, does what a timer per
 * poll would, and a held poll costs four fields instead of a `Timeout` of its own
 * (bench/micro/expiry-lists.js).
 */

/** Something that expires once, unless it is taken off its list first. */
export interface Expiring {
  /** When it expires, in `performance.now()` milliseconds. */
  expiresAt: number;
  /** The entry before it in its list. */
  previous: Expiring | undefined;
  /** The entry after it in its list. */
  next: Expiring | undefined;
  /** Its list while it waits; {@link ExpiryList.remove} takes it off. */
  list: ExpiryList | undefined;
  /** It expired: called once, after it was taken off its list. */
  expired(): void;
}

/** The lists of one broker, by duration; a list goes as soon as it is empty. */
export class Expiries {
  readonly #lists = new Map<number, ExpiryList>();

  /**
   * @param ref - whether the lists' timers keep the process alive: they do for held polls, as a
   *   poll's own timer did (a script awaiting a poll does not exit); not for what waits on
   *   nobody's behalf (answered many-channel polls kept for their re-poll)
   */
  constructor(readonly ref = true) {}

  /** `item` expires `duration` ms from now, unless it is removed first. */
  add(item: Expiring, duration: number): void {
    let list = this.#lists.get(duration);
    if (!list) {
      list = new ExpiryList(duration, this.#lists, this.ref);
      this.#lists.set(duration, list);
    }
    list.push(item);
  }

  /** How many lists (so timers) there are: for tests. */
  get size(): number {
    return this.#lists.size;
  }
}

/** Entries of one duration, in the order they were added, which is the order they expire in. */
export class ExpiryList {
  #first: Expiring | undefined = undefined;
  #last: Expiring | undefined = undefined;
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;

  constructor(
    readonly duration: number,
    readonly lists: Map<number, ExpiryList>,
    /** See {@link Expiries}. */
    readonly ref = true,
  ) {}

  #start(ms: number): ReturnType<typeof setTimeout> {
    const timer = setTimeout(this.#fire, ms);
    if (!this.ref) timer.unref?.();
    return timer;
  }

  /** Adds `item` at the end. */
  push(item: Expiring): void {
    item.expiresAt = performance.now() + this.duration;
    item.list = this;
    item.previous = this.#last;
    item.next = undefined;
    if (this.#last) this.#last.next = item;
    else this.#first = item;
    this.#last = item;
    this.#timer ??= this.#start(this.duration);
  }

  /** Takes `item` off the list; the list goes when it is empty. */
  remove(item: Expiring): void {
    this.#unlink(item);
    if (this.#first) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.lists.get(this.duration) === this) this.lists.delete(this.duration);
  }

  /** `item`, on this list, expires a whole duration from now: its wait starts over. */
  renew(item: Expiring): void {
    this.#unlink(item);
    this.push(item);
  }

  #unlink(item: Expiring): void {
    const { previous, next } = item;
    if (previous) previous.next = next;
    else this.#first = next;
    if (next) next.previous = previous;
    else this.#last = previous;
    item.previous = item.next = item.list = undefined;
  }

  /** Expires every entry that is due, then waits for the next one. */
  readonly #fire = (): void => {
    this.#timer = undefined;
    // A timer may fire up to a millisecond before its entry is due by this clock.
    const now = performance.now() + 1;
    for (let item = this.#first; item && item.expiresAt <= now; item = this.#first) {
      this.remove(item);
      item.expired();
    }
    // An entry that expired may have been held again on this list (an event stream writes its
    // heartbeat and polls again at once, and every stream has the same heartbeat): its push
    // started a timer of the full duration, later than the entry now first.
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const first = this.#first;
    if (first) this.#timer = this.#start(Math.max(0, first.expiresAt - performance.now()));
  };
}
