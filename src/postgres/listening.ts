import type { ClientBase, Notification } from 'pg';

/** A connection that can LISTEN, and how to give it back when it is done with or broken. */
export interface ListeningConnection {
  readonly client: ClientBase;
  /** Gives the connection back; with an error, it is destroyed rather than reused. */
  release(error?: Error): void;
}

/** What {@link Listening} needs. */
export interface ListeningOptions {
  /** Opens a new connection for LISTEN. */
  connect(): Promise<ListeningConnection>;
  /** The NOTIFY channel. */
  channel: string;
  /** How long the connect, the LISTEN and each heartbeat may take, in milliseconds. */
  timeout: number;
  /** Every notification's payload. */
  notified(payload: string): void;
  /** The connection listens (again): notifications sent while it did not are lost. */
  listening(): void;
  /** The connection dropped or could not be opened; called once per outage. */
  lost(error: Error): void;
}

/** Reconnects 50 ms after the first failure, then backs off to at most 2 s. */
const retryDelay = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 6), 2_000);
/** A silent network drop shows only when the connection is used: it is pinged this often. */
const HEARTBEAT_MS = 10_000;

const deadline = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
};

/**
 * The one connection that LISTENs for the engine: it reconnects until `close()`, with backoff,
 * and reports `listening()` each time LISTEN is in place again, so that the engine re-reads
 * what a notification lost in between would have woken.
 */
export class Listening {
  readonly #options: ListeningOptions;
  #current: ListeningConnection | undefined;
  #closed = false;
  #failures = 0;
  #outage = false;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /** Connections given back already: a broken one reports `error` and `end`, dropped once. */
  readonly #dropped = new WeakSet<ListeningConnection>();

  constructor(options: ListeningOptions) {
    this.#options = options;
  }

  /** Starts connecting; returns at once. */
  start(): void {
    void this.#open();
  }

  /** Whether LISTEN is in place now. */
  get connected(): boolean {
    return this.#current !== undefined;
  }

  async #open(): Promise<void> {
    if (this.#closed) return;
    const { channel, timeout } = this.#options;
    let connection: ListeningConnection | undefined;
    let abandoned = false;
    try {
      const opening = this.#options.connect();
      // A connect that completes after its deadline still has to be given back.
      opening.then(
        (late) => {
          if (abandoned) late.release(new Error('connected too late'));
        },
        () => {},
      );
      const opened = await deadline(opening, timeout, 'Connecting to PostgreSQL').catch((error: unknown) => {
        abandoned = true;
        throw error;
      });
      connection = opened;
      const { client } = opened;
      client.on('notification', this.#notification);
      client.on('error', (error: Error) => this.#drop(opened, error));
      client.on('end', () => this.#drop(opened, new Error('The listening connection ended')));
      await deadline(client.query(`LISTEN ${channel}`), timeout, 'LISTEN');
      if (this.#closed) {
        opened.release();
        return;
      }
      this.#current = opened;
      this.#failures = 0;
      this.#outage = false;
      this.#heartbeat = setInterval(() => this.#ping(opened), HEARTBEAT_MS);
      this.#heartbeat.unref?.();
      this.#options.listening();
    } catch (error) {
      if (connection) this.#drop(connection, error as Error);
      else this.#failed(error as Error);
    }
  }

  readonly #notification = (message: Notification): void => {
    if (message.channel === this.#options.channel) this.#options.notified(message.payload ?? '');
  };

  #ping(connection: ListeningConnection): void {
    deadline(connection.client.query('SELECT 1'), this.#options.timeout, 'A heartbeat on the listening connection').catch((error: Error) =>
      this.#drop(connection, error),
    );
  }

  /** Destroys a broken connection (once) and reconnects. */
  #drop(connection: ListeningConnection, error: Error): void {
    if (this.#dropped.has(connection)) return;
    this.#dropped.add(connection);
    connection.client.off('notification', this.#notification);
    if (this.#current === connection) {
      this.#current = undefined;
      clearInterval(this.#heartbeat);
    }
    try {
      connection.release(error);
    } catch {
      // released already
    }
    this.#failed(error);
  }

  #failed(error: Error): void {
    if (this.#closed) return;
    if (!this.#outage) {
      this.#outage = true;
      this.#options.lost(error);
    }
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => void this.#open(), retryDelay(this.#failures++));
    this.#retry.unref?.();
  }

  /** Stops listening and gives the connection back. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    clearInterval(this.#heartbeat);
    const connection = this.#current;
    this.#current = undefined;
    if (connection) {
      this.#dropped.add(connection);
      connection.client.off('notification', this.#notification);
      // Ignore the error an ended connection may still emit.
      connection.client.on('error', () => {});
      connection.release(new Error('closed'));
    }
  }
}
