/**
 * The ids of the last `capacity` messages delivered, to drop a message seen twice (a
 * rehydration after `cursor_expired`, a retried answer) in bounded memory: a Set iterates in
 * insertion order, so the oldest id is the first one.
 */
export class RecentIds {
  readonly #ids = new Set<string>();
  readonly #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** Whether `id` is recorded. */
  has(id: string): boolean {
    return this.#ids.has(id);
  }

  /** Records `id`; returns false when it was already recorded. */
  add(id: string): boolean {
    if (this.#ids.has(id)) return false;
    this.#ids.add(id);
    if (this.#ids.size > this.#capacity) {
      for (const oldest of this.#ids) {
        this.#ids.delete(oldest);
        break;
      }
    }
    return true;
  }
}
