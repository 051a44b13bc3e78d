/**
 * A minimal typed event emitter for the client. `node:events` does not exist in browsers and
 * `EventTarget` would wrap every payload in an Event, so the client carries its own: listeners
 * in insertion order, `once`, and a listener that throws never stops the others or the caller.
 */
export type EventMap<Events> = { [E in keyof Events]: (...args: never[]) => void };

export class Emitter<Events extends EventMap<Events>> {
  readonly #listeners = new Map<keyof Events, Set<Events[keyof Events]>>();

  on<E extends keyof Events>(event: E, listener: Events[E]): void {
    let listeners = this.#listeners.get(event);
    if (!listeners) this.#listeners.set(event, (listeners = new Set()));
    listeners.add(listener);
  }

  off<E extends keyof Events>(event: E, listener: Events[E]): void {
    this.#listeners.get(event)?.delete(listener);
  }

  once<E extends keyof Events>(event: E, listener: Events[E]): void {
    const wrapper = ((...args: Parameters<Events[E]>) => {
      this.off(event, wrapper);
      (listener as (...args: Parameters<Events[E]>) => void)(...args);
    }) as Events[E];
    this.on(event, wrapper);
  }

  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    const listeners = this.#listeners.get(event);
    if (!listeners) return;
    // A copy: a listener may remove itself (once) or others while we iterate.
    for (const listener of [...listeners]) {
      try {
        (listener as (...args: Parameters<Events[E]>) => void)(...args);
      } catch (error) {
        report(error);
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}

/**
 * A listener's bug must not stop the subscription, yet must not vanish either: report it the
 * way EventTarget does (`reportError` in browsers; an uncaught exception on a later tick in Node).
 */
function report(error: unknown): void {
  const { reportError } = globalThis as { reportError?: (error: unknown) => void };
  if (typeof reportError === 'function') reportError(error);
  else
    queueMicrotask(() => {
      throw error;
    });
}
