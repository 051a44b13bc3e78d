/**
 * Request/answer over a child process's IPC channel: the orchestrator asks, the server and the
 * load generator answer. Every request is bounded by a timeout, so a stuck child fails the run
 * instead of hanging it.
 */

/**
 * Answers requests arriving on this process's IPC channel with `handlers[command](args)`.
 * @param {Record<string, (args: any) => unknown>} handlers
 */
export function answerRequests(handlers) {
  if (!process.send) throw new Error('Run me from bench/run.js: I need an IPC channel');
  process.on('message', (request) => {
    const { id, command, args } = request;
    Promise.resolve()
      .then(() => {
        const handler = handlers[command];
        if (!handler) throw new Error(`Unknown command ${command}`);
        return handler(args);
      })
      .then(
        (value) => process.send?.({ id, value }),
        (error) => process.send?.({ id, error: String(error?.stack ?? error) }),
      );
  });
  // The parent went away: nothing will ever ask again.
  process.on('disconnect', () => process.exit(0));
  process.send({ ready: true });
}

/**
 * Resolves once `child` has installed its handlers (see {@link answerRequests}).
 * @param {import('node:child_process').ChildProcess} child
 * @param {string} name
 * @param {number} timeout milliseconds
 */
export function whenReady(child, name, timeout = 30_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`${name} was not ready within ${timeout} ms`)), timeout);
    const onMessage = (message) => message?.ready && finish();
    const onExit = (code, signal) => finish(new Error(`${name} exited (${code ?? signal}) before it was ready`));
    /** @param {Error} [error] */
    function finish(error) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(undefined);
    }
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/**
 * A function that sends `command` to `child` and resolves with its answer.
 * @param {import('node:child_process').ChildProcess} child
 * @param {string} name for error messages
 */
export function asker(child, name) {
  let next = 0;
  /** @type {Map<number, { resolve: (value: any) => void, reject: (error: Error) => void, timer: NodeJS.Timeout }>} */
  const pending = new Map();
  child.on('message', (answer) => {
    const entry = pending.get(answer.id);
    if (!entry) return;
    pending.delete(answer.id);
    clearTimeout(entry.timer);
    if (answer.error) entry.reject(new Error(`${name}: ${answer.error}`));
    else entry.resolve(answer.value);
  });
  child.on('exit', (code, signal) => {
    for (const entry of pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(new Error(`${name} exited (${code ?? signal}) with a request pending`));
    }
    pending.clear();
  });
  /**
   * @param {string} command
   * @param {unknown} [args]
   * @param {number} [timeout] milliseconds
   * @returns {Promise<any>}
   */
  return (command, args, timeout = 60_000) =>
    new Promise((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${name}: ${command} got no answer within ${timeout} ms`));
      }, timeout);
      pending.set(id, { resolve, reject, timer });
      child.send({ id, command, args });
    });
}
