interface Reader<T> {
  resolve(result: IteratorResult<T, undefined>): void;
  reject(error: Error): void;
}

/**
 * The bounded buffer between the polling loop and an async iterator. The loop waits for
 * `room()` before each poll, so a slow reader pauses polling instead of losing messages
 * (backpressure); `free` lets the loop ask the server for no more than fits.
 */
export class MessageQueue<T> {
  readonly #items: T[] = [];
  readonly #readers: Reader<T>[] = [];
  readonly #capacity: number;
  #wakeWriter: (() => void) | undefined;
  #ended = false;
  #failure: Error | undefined;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** How many more messages fit. */
  get free(): number {
    return this.#capacity - this.#items.length;
  }

  /** Hands `item` to a waiting reader, or buffers it. */
  push(item: T): void {
    const reader = this.#readers.shift();
    if (reader) reader.resolve({ value: item, done: false });
    else this.#items.push(item);
  }

  /** Resolves once at least one message fits, or the queue has ended. */
  async room(): Promise<void> {
    while (this.free <= 0 && !this.#ended) {
      await new Promise<void>((resolve) => (this.#wakeWriter = resolve));
    }
  }

  /** The next message; after the end, buffered messages first, then `failure` (once) or done. */
  next(): Promise<IteratorResult<T, undefined>> {
    if (this.#items.length > 0) {
      const value = this.#items.shift()!;
      this.#wake();
      return Promise.resolve({ value, done: false });
    }
    if (this.#ended) {
      const failure = this.#failure;
      this.#failure = undefined;
      return failure ? Promise.reject(failure) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.#readers.push({ resolve, reject }));
  }

  /** No more messages will come: readers drain what is buffered, then see `failure` or done. */
  end(failure?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failure = failure;
    this.#wake();
    // Readers wait only while the buffer is empty, so each of them gets the end.
    for (const reader of this.#readers.splice(0)) {
      const pending = this.#failure;
      this.#failure = undefined;
      if (pending) reader.reject(pending);
      else reader.resolve({ value: undefined, done: true });
    }
  }

  /** The reader left: drop what is buffered. */
  discard(): void {
    this.#items.length = 0;
    this.end();
  }

  #wake(): void {
    const wake = this.#wakeWriter;
    this.#wakeWriter = undefined;
    wake?.();
  }
}
