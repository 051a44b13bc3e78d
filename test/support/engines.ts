import { MemoryEngine, type Batch, type Cursor, type Engine } from '../../src/index.js';

/** A MemoryEngine that counts its synchronous reads: a poll taken over reads nothing. */
export class CountingEngine extends MemoryEngine {
  reads = 0;
  override readNow(channel: string, cursor: Cursor | undefined, limit: number): Batch {
    this.reads++;
    return super.readNow(channel, cursor, limit);
  }
}

/**
 * A MemoryEngine seen through the required part of the engine contract only: no synchronous
 * `readNow` and no text of the messages (`Batch.json`), as an engine whose history lives
 * elsewhere (RedisEngine) behaves.
 */
export function requiredOnly(inner: MemoryEngine): Engine {
  return {
    attach: (listener) => inner.attach(listener),
    append: (channel, json) => inner.append(channel, json),
    read: async (channel, cursor, limit) => {
      const { messages, cursor: next } = await inner.read(channel, cursor, limit);
      return { messages, cursor: next };
    },
    checkCursor: (channel, cursor) => inner.checkCursor(channel, cursor),
    retains: (channel) => inner.retains(channel),
    stats: () => inner.stats(),
    close: () => inner.close(),
  };
}

/** A gate held across one engine read: resolves `started` when the read reaches it, waits for `open()`. */
export interface ReadGate {
  readonly started: Promise<void>;
  open(): void;
}

/**
 * A new MemoryEngine without `readNow` ({@link requiredOnly}) whose next read, once `block()` is
 * called, waits at a gate the test opens: a drain has then built its groups and waits for the
 * engine while the test makes polls go away.
 */
export function gatedEngine(): Engine & { block(): ReadGate } {
  const base = requiredOnly(new MemoryEngine());
  let blocked: { reached: () => void; opened: Promise<void> } | undefined;
  return {
    ...base,
    read: async (channel, cursor, limit) => {
      const gate = blocked;
      blocked = undefined;
      if (gate) {
        gate.reached();
        await gate.opened;
      }
      return base.read(channel, cursor, limit);
    },
    block() {
      let reached!: () => void;
      let open!: () => void;
      const started = new Promise<void>((resolve) => (reached = resolve));
      const opened = new Promise<void>((resolve) => (open = resolve));
      blocked = { reached, opened };
      return { started, open };
    },
  };
}
