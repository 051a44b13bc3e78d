/**
 * Exponential backoff with full jitter (the "Full Jitter" of AWS's *Exponential Backoff and
 * Jitter*): the n-th consecutive failure (n = 1, 2, …) waits a uniformly random time in
 * `[0, min(max, initial × 2ⁿ⁻¹))`, so clients that failed together do not retry together.
 */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #random: () => number;
  #ceiling: number;

  /** @param random - a source of numbers in [0, 1); tests pass a fixed one */
  constructor(initial: number, max: number, random: () => number = Math.random) {
    this.#initial = initial;
    this.#max = max;
    this.#random = random;
    this.#ceiling = Math.min(initial, max);
  }

  /** The delay before the next retry, in milliseconds; each call doubles the ceiling up to `max`. */
  next(): number {
    const delay = this.#random() * this.#ceiling;
    this.#ceiling = Math.min(this.#max, this.#ceiling * 2);
    return delay;
  }

  /** After a success: the next failure starts again from `initial`. */
  reset(): void {
    this.#ceiling = Math.min(this.#initial, this.#max);
  }
}
