/** Anything stored in a {@link RingBuffer}: its position, strictly increasing in push order. */
export interface Positioned {
  readonly position: number;
}

const INITIAL_SLOTS = 8;

/**
 * A ring of at most `capacity` entries (`Infinity` for no limit) whose positions increase in push
 * order, so the first entry after a position is found by binary search. Storage starts small and
 * doubles up to `capacity`, so ten thousand channels of one message each do not each hold a
 * thousand slots.
 *
 * @internal
 */
export class RingBuffer<T extends Positioned> {
  readonly capacity: number;
  #slots: (T | undefined)[];
  #head = 0;
  #length = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.#slots = new Array<T | undefined>(Math.min(capacity, INITIAL_SLOTS));
  }

  /** Entries held. */
  get length(): number {
    return this.#length;
  }

  /** The entry `index` places after the oldest (0 is the oldest). */
  at(index: number): T | undefined {
    if (index < 0 || index >= this.#length) return undefined;
    return this.#slots[(this.#head + index) % this.#slots.length];
  }

  /** The oldest entry. */
  first(): T | undefined {
    return this.at(0);
  }

  /** The newest entry. */
  last(): T | undefined {
    return this.at(this.#length - 1);
  }

  /** Appends `entry`; when full, drops the oldest entry and returns it. */
  push(entry: T): T | undefined {
    let dropped: T | undefined;
    if (this.#length === this.capacity) {
      dropped = this.shift();
    } else if (this.#length === this.#slots.length) {
      this.#grow();
    }
    this.#slots[(this.#head + this.#length) % this.#slots.length] = entry;
    this.#length++;
    return dropped;
  }

  /** Removes and returns the oldest entry. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const entry = this.#slots[this.#head];
    this.#slots[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#slots.length;
    this.#length--;
    return entry;
  }

  /** The index of the first entry whose position is greater than `position` (`length` if none). */
  indexAfter(position: number): number {
    let low = 0;
    let high = this.#length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.at(middle)!.position <= position) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The entries from index `start` (inclusive) to `end` (exclusive), oldest first. */
  slice(start: number, end: number): T[] {
    const out = new Array<T>(Math.max(0, end - start));
    for (let i = start; i < end; i++) out[i - start] = this.at(i)!;
    return out;
  }

  /** Keeps only the entries for which `keep` holds, in order, in storage no larger than needed. */
  retain(keep: (entry: T) => boolean): void {
    const kept: T[] = [];
    for (let i = 0; i < this.#length; i++) {
      const entry = this.at(i)!;
      if (keep(entry)) kept.push(entry);
    }
    const slots = new Array<T | undefined>(Math.min(this.capacity, Math.max(INITIAL_SLOTS, kept.length)));
    for (let i = 0; i < kept.length; i++) slots[i] = kept[i];
    this.#slots = slots;
    this.#head = 0;
    this.#length = kept.length;
  }

  #grow(): void {
    const size = Math.min(this.capacity, this.#slots.length * 2);
    const slots = new Array<T | undefined>(size);
    for (let i = 0; i < this.#length; i++) slots[i] = this.at(i);
    this.#slots = slots;
    this.#head = 0;
  }
}
