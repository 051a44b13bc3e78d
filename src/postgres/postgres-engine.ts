import type { Client, ClientBase, ClientConfig, Pool, QueryResultRow } from 'pg';
import pTimeout from 'p-timeout';
import { ulid } from 'ulid';
import type { Batch, Cursor, Engine, EngineListener, EngineStats, JsonValue, Message, PublishedMessage } from '../engine.js';
import { tagOf } from '../channel-tag.js';
import { LongPollError } from '../errors.js';
import { parseFrozen, payloadOf } from '../json.js';
import { checkOption } from '../option-check.js';
import { Listening, type ListeningConnection } from './listening.js';
import { checkLimits, checkPrefix, maxAgeMs, migrationSql, statementsFor, type Statements } from './sql.js';

/** Options of {@link PostgresEngine}. */
export interface PostgresEngineOptions {
  /**
   * Your node-postgres `Pool`. The engine runs its queries on it and never ends it. Without
   * `listen`, it also takes one connection from it for good, to `LISTEN`.
   * @example
   * ```ts
   * new pg.Pool({ connectionString: process.env.DATABASE_URL })
   * ```
   */
  pool: Pool;
  /**
   * Starts the name of every table and function: `<prefix>_messages`, `<prefix>_channels`,
   * `<prefix>_publish`… and of the `NOTIFY` channel `<prefix>_appended`. A lower-case SQL
   * identifier of at most 40 characters. Instances that serve the same channels use the same one.
   * @default 'longpoll'
   */
  prefix?: string;
  /**
   * Messages kept per channel; the oldest go first. `migrate()` records it for `<prefix>_publish`.
   * @default 1000
   */
  capacity?: number;
  /**
   * How long a message is kept, in milliseconds, by the database's clock; `Infinity` keeps
   * messages until `capacity` pushes them out. `migrate()` records it for `<prefix>_publish`.
   * @default 300_000
   */
  maxAge?: number;
  /**
   * Where the one listening connection goes: a connection string or a node-postgres client
   * configuration. Needed when `pool` goes through PgBouncer in transaction or statement mode,
   * which cannot `LISTEN`: give a direct connection to PostgreSQL here. By default, a
   * connection taken from `pool`.
   * @example
   * ```ts
   * new PostgresEngine({ pool, listen: process.env.DATABASE_DIRECT_URL })
   * ```
   */
  listen?: string | ClientConfig;
  /**
   * How long one query may take, in milliseconds, waiting for a pooled connection included,
   * before the publish or poll fails with `unavailable` (HTTP 503). node-postgres waits forever
   * by default. Also the deadline of the listening connection's connect, `LISTEN` and heartbeat.
   * @default 5_000
   */
  timeout?: number;
}

/** Something that runs queries: your `Pool`, or a client inside your transaction. */
export type Queryable = Pick<ClientBase, 'query'>;

/**
 * `epoch.tag.position` for a channel that has a row, or `epoch.tag.0-ms` with the engine-wide
 * epoch and the database's time, for a channel that had no history when it was read.
 */
const CURSOR = /^([0-9A-HJKMNP-TV-Z]{10})\.([0-9a-z]{1,7})\.(\d{1,15})(?:-(\d{1,15}))?$/;
/**
 * A channel's row outlives its newest message by this much (after `maxAge`), so its cursors
 * keep working; so a cursor read while the channel had no row is good for this long (each poll
 * renews it), since no row created after it can have been dropped in the meantime.
 */
const GRACE_MS = 86_400_000;
/** The sweep of idle channels' expired messages runs this often, at most (and at least once a second). */
const SWEEP_MS = 60_000;

interface ParsedCursor {
  readonly epoch: string;
  readonly position: number;
  /** Only in a cursor of a channel that had no history: when it was read. */
  readonly time: number | undefined;
}

function parseCursor(channel: string, cursor: Cursor): ParsedCursor {
  const parts = typeof cursor === 'string' ? CURSOR.exec(cursor) : null;
  if (!parts) throw new LongPollError('invalid_cursor', 'The cursor is not one this server issued');
  if (parts[2] !== tagOf(channel)) throw new LongPollError('invalid_cursor', 'The cursor belongs to another channel');
  return { epoch: parts[1]!, position: Number(parts[3]), time: parts[4] === undefined ? undefined : Number(parts[4]) };
}

function assertOption(valid: boolean, name: string, value: unknown, expected: string): void {
  checkOption(valid, 'PostgresEngine', name, value, expected);
}

/**
 * SQLSTATE classes and codes that pass by themselves (503, not 500): connection exceptions,
 * insufficient resources, operator intervention (shutdown, cancel), system errors, a
 * serialization failure or deadlock, a lock not available, and writing to a hot standby (a
 * failover in progress).
 */
const TRANSIENT = /^(08|53|57|58|40)|^55P03$|^25006$/;

interface AppendRow extends QueryResultRow {
  message_id: string;
  message_position: string;
  channel_epoch: string;
  published_ms: string;
  trimmed: string;
  expired: string;
}

interface ReadRow extends QueryResultRow {
  global_epoch: string;
  now_ms: string;
  epoch: string | null;
  first_position: string | null;
  last_position: string | null;
  position: string | null;
  id: string | null;
  data: string | null;
  ms: string | null;
}

interface TailRow extends QueryResultRow {
  global_epoch: string;
  now_ms: string;
  epoch: string | null;
  last_position: string | null;
}

interface EarliestRow extends QueryResultRow {
  global_epoch: string;
  now_ms: string;
  epoch: string | null;
  last_position: string | null;
  first_fresh: string | null;
}

/**
 * History in PostgreSQL, shared by every instance on the same database and prefix, with
 * wake-ups through `LISTEN`/`NOTIFY`: any instance answers any client from its cursor.
 *
 * Call {@link migrate} once before use (or run {@link migrationSql} with your migration tool).
 * Each channel has a row in `<prefix>_channels`; a publish takes the channel's next position
 * from that row under its row lock, inside the inserting transaction, so a channel's positions
 * become visible in commit order and a reader never passes a message that commits later. The
 * row also holds the channel's epoch (new whenever the row is created), which every cursor
 * names. A read checks that the positions after the cursor are all there: a history truncated
 * or deleted behind the engine's back gives `cursor_expired`, never a silent gap.
 *
 * Publish from SQL with `SELECT <prefix>_publish(channel, data)`, or from JavaScript inside your
 * own transaction with {@link publishWith}: the message exists, and wakes polls on every
 * instance, if and only if the transaction commits.
 *
 * While the database is unreachable or slower than `timeout`, `append` and `read` fail with
 * `unavailable` (HTTP 503); nothing is reported as published that was not committed.
 *
 * `stats()` and `retains()` describe nothing: the history lives in the database.
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * import { Broker } from 'longpoll-kit';
 * import { PostgresEngine } from 'longpoll-kit/postgres';
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * const engine = new PostgresEngine({ pool, capacity: 1000, maxAge: 300_000 });
 * await engine.migrate();
 * const broker = new Broker({ engine });
 * ```
 */
export class PostgresEngine implements Engine {
  /** Messages kept per channel. */
  readonly capacity: number;
  /** How long a message is kept, in milliseconds. */
  readonly maxAge: number;
  /** The prefix of every table, function and of the `NOTIFY` channel. */
  readonly prefix: string;

  readonly #pool: Pool;
  readonly #listen: string | ClientConfig | undefined;
  readonly #timeout: number;
  readonly #maxAgeMs: number | null;
  readonly #sql: Statements;
  /** Tells this instance's notifications from the others'. */
  readonly #instance = ulid();
  #listener: EngineListener | undefined;
  #listening: Listening | undefined;
  /** Whether the NOTIFY round trip was checked (once, on the first connection). */
  #probed = false;
  #probe: (() => void) | undefined;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  /** The last append in flight per channel, so that the next one waits for it; dropped when done. */
  readonly #appending = new Map<string, Promise<void>>();
  #closed = false;

  /**
   * @example
   * ```ts
   * const engine = new PostgresEngine({ pool, prefix: 'chat', capacity: 100, maxAge: 60_000 });
   * ```
   */
  constructor(options: PostgresEngineOptions) {
    const { pool, prefix = 'longpoll', capacity = 1000, maxAge = 300_000, listen, timeout = 5_000 } = options ?? {};
    assertOption(typeof pool?.query === 'function' && typeof pool.connect === 'function', 'pool', pool, 'a node-postgres Pool');
    checkPrefix('PostgresEngine', prefix);
    checkLimits('PostgresEngine', capacity, maxAge);
    assertOption(listen === undefined || typeof listen === 'string' || (typeof listen === 'object' && listen !== null), 'listen', listen, 'a connection string or a node-postgres client configuration');
    assertOption(typeof timeout === 'number' && timeout > 0 && Number.isFinite(timeout), 'timeout', timeout, 'a positive number of milliseconds');
    this.#pool = pool;
    this.prefix = prefix;
    this.capacity = capacity;
    this.maxAge = maxAge;
    this.#listen = listen;
    this.#timeout = timeout;
    this.#maxAgeMs = maxAgeMs(maxAge);
    this.#sql = statementsFor(prefix);
  }

  /**
   * Creates the tables and functions if they are missing and records `capacity` and `maxAge`
   * for `<prefix>_publish`, in one transaction. Safe to run from several instances at once
   * (they take turns on an advisory lock) and on every start.
   */
  async migrate(): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query(`BEGIN;\n${migrationSql(this.prefix, { capacity: this.capacity, maxAge: this.maxAge })}\nCOMMIT;`);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /** Starts listening for appends from every instance and from SQL; polls work at once, wake-ups once it listens. */
  attach(listener: EngineListener): void {
    if (this.#listener) throw new LongPollError('invalid_option', 'This engine already serves a broker');
    this.#listener = listener;
    this.#listening = new Listening({
      connect: () => this.#connect(),
      channel: this.#sql.notifications,
      timeout: this.#timeout,
      notified: (payload) => this.#notified(payload),
      listening: () => {
        if (!this.#probed) {
          this.#probed = true;
          void this.#checkRoundTrip();
        }
        listener.resync();
      },
      lost: (error) =>
        listener.error?.(new LongPollError('unavailable', `Lost the connection that listens for other instances' messages: ${error.message}`, { cause: error })),
    });
    this.#listening.start();
    if (this.#maxAgeMs !== null) {
      this.#sweepTimer = setInterval(() => void this.#sweep(), Math.max(1_000, Math.min(this.#maxAgeMs, SWEEP_MS)));
      this.#sweepTimer.unref?.();
    }
  }

  /** Appends `json` to `channel`, trims its history and notifies every instance, in one statement. */
  append(channel: string, json: string, value?: JsonValue): Promise<PublishedMessage> {
    // One at a time per channel: the pool's connections would otherwise reorder this
    // instance's publishes, and publish order is the order subscribers see.
    const before = this.#appending.get(channel);
    const appending = before ? before.then(() => this.#append(channel, json, value)) : this.#append(channel, json, value);
    const settled = appending.then(
      () => {},
      () => {},
    );
    this.#appending.set(channel, settled);
    void settled.then(() => {
      if (this.#appending.get(channel) === settled) this.#appending.delete(channel);
    });
    return appending;
  }

  async #append(channel: string, json: string, value: JsonValue | undefined): Promise<PublishedMessage> {
    let row: AppendRow;
    try {
      [row] = (await this.#query<AppendRow>(this.#sql.append, [channel, json, this.capacity, this.#maxAgeMs, this.#instance])) as [AppendRow];
    } catch (error) {
      // A statement that timed out may still commit, and this instance ignores its own
      // notifications: a spurious wake-up costs one read, a missed one a whole wait.
      this.#listener?.appended(channel);
      throw error;
    }
    if (Number(row.expired) > 0) this.#listener?.evicted(channel, Number(row.expired), 'maxAge');
    if (Number(row.trimmed) > 0) this.#listener?.evicted(channel, Number(row.trimmed), 'capacity');
    this.#listener?.appended(channel);
    return this.#published(channel, row, value ?? parseFrozen(json));
  }

  /**
   * Publishes `data` on `channel` through `client`, inside the transaction it is in: the message
   * exists, and wakes polls on every instance, if and only if that transaction commits
   * (`NOTIFY` is delivered on commit). The JavaScript twin of `SELECT <prefix>_publish(…)`,
   * with this engine's `capacity` and `maxAge`. The broker's `publish` event does not fire for it.
   *
   * The statement has the engine's `timeout` too; when it fails, roll the transaction back.
   *
   * @returns the message and its cursor, as they will be once the transaction commits
   * @throws `LongPollError` `invalid_channel`, `invalid_payload`, `unavailable` or `internal`
   * @example
   * ```ts
   * const client = await pool.connect();
   * try {
   *   await client.query('BEGIN');
   *   await client.query('UPDATE jobs SET state = $2 WHERE id = $1', [job.id, 'done']);
   *   await engine.publishWith(client, `job-${job.id}`, { state: 'done' });
   *   await client.query('COMMIT');
   * } catch (error) {
   *   await client.query('ROLLBACK');
   *   throw error;
   * } finally {
   *   client.release();
   * }
   * ```
   */
  async publishWith(client: Queryable, channel: string, data: unknown): Promise<PublishedMessage> {
    if (typeof channel !== 'string' || channel.length === 0) throw new LongPollError('invalid_channel', 'The channel must be a non-empty string');
    const { json, value } = payloadOf(data);
    const [row] = (await this.#query<AppendRow>(this.#sql.append, [channel, json, this.capacity, this.#maxAgeMs, ''], client)) as [AppendRow];
    return this.#published(channel, row, value);
  }

  /**
   * Throws `invalid_cursor` when `cursor` cannot be one of `channel`'s cursors (its syntax, or
   * another channel's), without asking the database.
   */
  checkCursor(channel: string, cursor: Cursor): void {
    parseCursor(channel, cursor);
  }

  /**
   * Reads up to `limit` messages after `cursor`, or everything retained when it is undefined
   * (then with `Batch.before`, just before the first message), in one statement. Reading a
   * channel that has no history writes nothing.
   */
  async read(channel: string, cursor: Cursor | undefined, limit: number): Promise<Batch> {
    const parsed = cursor === undefined ? undefined : parseCursor(channel, cursor);
    const after = parsed === undefined || parsed.time !== undefined ? 0 : parsed.position;
    const rows = await this.#query<ReadRow>(this.#sql.read, [channel, after, limit, this.#maxAgeMs]);
    const head = rows[0];
    if (!head) throw this.#notMigrated();
    const now = Number(head.now_ms);
    const fresh = (p: ParsedCursor) => p.epoch === head.global_epoch && p.time !== undefined && now - p.time <= GRACE_MS;
    if (head.epoch === null) {
      // No row: no history. A cursor of the row that was here, or an old one, cannot be proven.
      if (parsed && !fresh(parsed)) throw await this.#expired(channel);
      return { messages: Object.freeze([]), cursor: this.#emptyCursor(head.global_epoch, channel, now) };
    }
    const last = Number(head.last_position);
    const found = head.position === null ? [] : rows;
    let from = last;
    if (parsed) {
      if (parsed.epoch === head.epoch && parsed.time === undefined) from = parsed.position;
      else if (fresh(parsed)) from = 0;
      else throw await this.#expired(channel);
      // Positions are gapless (a rolled-back publish rolls its position back too), so anything
      // but the very next position first means messages after the cursor are gone.
      if (from > last || (from < last && (found.length === 0 || Number(found[0]!.position) !== from + 1))) throw await this.#expired(channel);
    }
    // Frozen: every poll woken by this read shares the arrays.
    const messages = Object.freeze(
      found.map((row) => this.#message(channel, row.id!, parseFrozen(row.data!), Number(row.ms))),
    );
    const prefix = `${head.epoch}.${tagOf(channel)}.`;
    const cursors = Object.freeze(found.map((row) => prefix + Number(row.position)));
    const next = found.length > 0 ? Number(found[found.length - 1]!.position) : from;
    // Read from everything retained: positions are gapless, so it started just before the first.
    const before = parsed === undefined && found.length > 0 ? prefix + (Number(found[0]!.position) - 1) : undefined;
    return { messages, cursor: prefix + next, cursors, before };
  }

  /**
   * The cursor just after `channel`'s newest message, from the channel's row alone, in one
   * statement. Like `read`, it writes nothing for a channel that has no history.
   */
  async tail(channel: string): Promise<Cursor> {
    const [row] = await this.#query<TailRow>(this.#sql.tail, [channel]);
    if (!row) throw this.#notMigrated();
    if (row.epoch === null) return this.#emptyCursor(row.global_epoch, channel, Number(row.now_ms));
    return `${row.epoch}.${tagOf(channel)}.${Number(row.last_position)}`;
  }

  /** Always `false`: the history lives in the database, shared by every instance. */
  retains(_channel: string): boolean {
    return false;
  }

  /** Always zero: the history lives in the database, shared by every instance. */
  stats(): EngineStats {
    return { channels: 0, messages: 0 };
  }

  /** Closes the listening connection and stops the sweep; your pool stays open. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    this.#listening?.close();
    this.#probe?.();
  }

  async #connect(): Promise<ListeningConnection> {
    if (this.#listen === undefined) {
      const client = await this.#pool.connect();
      return { client, release: (error) => client.release(error ?? true) };
    }
    // The pool's own client class (pg.Pool keeps it as `Client`): this module imports pg's types
    // only, so that it loads, like the package's other subpaths, whether or not pg is installed.
    const { Client: PgClient } = this.#pool as Pool & { Client: new (config: ClientConfig) => Client };
    const client = new PgClient(typeof this.#listen === 'string' ? { connectionString: this.#listen } : this.#listen);
    client.on('error', () => {}); // reported through the listening connection's own handler
    const release = () => void client.end().catch(() => {});
    try {
      await client.connect();
    } catch (error) {
      release();
      throw error;
    }
    return { client, release };
  }

  #notified(payload: string): void {
    const listener = this.#listener;
    if (!listener || this.#closed) return;
    if (payload === '*') return listener.resync();
    if (payload.startsWith('!')) {
      if (payload === `!${this.#instance}`) this.#probe?.();
      return;
    }
    const first = payload.indexOf(':');
    const second = payload.indexOf(':', first + 1);
    if (first < 0 || second < 0) return;
    // This instance notified its broker of its own appends already.
    if (payload.slice(0, first) === this.#instance) return;
    listener.appended(payload.slice(second + 1));
  }

  /**
   * Sends a NOTIFY through the pool and waits for it on the listening connection: behind
   * PgBouncer in transaction mode, LISTEN succeeds but nothing ever arrives.
   */
  async #checkRoundTrip(): Promise<void> {
    const arrived = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.#timeout);
      this.#probe = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    this.#query(`SELECT pg_notify($1, $2)`, [this.#sql.notifications, `!${this.#instance}`]).catch(() => {});
    const ok = await arrived;
    this.#probe = undefined;
    if (!ok && !this.#closed) {
      this.#listener?.error?.(
        new LongPollError(
          'unavailable',
          `No NOTIFY reached the listening connection within ${this.#timeout} ms: other instances' messages will wake held polls late or never. If your pool goes through PgBouncer in transaction mode, pass a direct connection as the listen option.`,
        ),
      );
    }
  }

  /** Deletes the expired history of idle channels (busy ones are trimmed as they publish). */
  async #sweep(): Promise<void> {
    if (this.#maxAgeMs === null || this.#closed) return;
    try {
      const rows = await this.#query<{ swept_channel: string; swept: string }>(this.#sql.sweep, [this.#maxAgeMs, GRACE_MS]);
      for (const row of rows) this.#listener?.evicted(row.swept_channel, Number(row.swept), 'maxAge');
    } catch {
      // the next sweep, or the channel's next publish, deletes them
    }
  }

  /** The `cursor_expired` error for `channel`, with the cursor just before its earliest retained message. */
  async #expired(channel: string): Promise<LongPollError> {
    const [row] = await this.#query<EarliestRow>(this.#sql.earliest, [channel, this.#maxAgeMs]);
    if (!row) return this.#notMigrated();
    const earliestCursor =
      row.epoch === null
        ? this.#emptyCursor(row.global_epoch, channel, Number(row.now_ms))
        : `${row.epoch}.${tagOf(channel)}.${row.first_fresh === null ? Number(row.last_position) : Number(row.first_fresh) - 1}`;
    return new LongPollError('cursor_expired', 'Messages after the cursor are gone; resume from earliestCursor', { earliestCursor });
  }

  #notMigrated(): LongPollError {
    return new LongPollError('internal', `The table ${this.prefix}_settings is empty: run engine.migrate() (or migrationSql) first`);
  }

  /** Runs one statement with the engine's deadline; outages are `unavailable`, the rest `internal`. */
  async #query<Row extends QueryResultRow>(text: string, values: unknown[], on: Queryable = this.#pool): Promise<Row[]> {
    try {
      const result = await pTimeout(on.query<Row>(text, values), {
        milliseconds: this.#timeout,
        message: `PostgreSQL did not answer within ${this.#timeout} ms`,
      });
      return result.rows;
    } catch (error) {
      throw failure(error);
    }
  }

  #published(channel: string, row: AppendRow, data: JsonValue): PublishedMessage {
    return {
      ...this.#message(channel, row.message_id, data, Number(row.published_ms)),
      cursor: `${row.channel_epoch}.${tagOf(channel)}.${row.message_position}`,
    };
  }

  #message(channel: string, id: string, data: JsonValue, ms: number): Message {
    return Object.freeze({
      id,
      channel,
      data,
      publishedAt: new Date(ms).toISOString(),
    });
  }

  #emptyCursor(epoch: string, channel: string, now: number): Cursor {
    return `${epoch}.${tagOf(channel)}.0-${now}`;
  }
}

/** What a failed query means to a caller: an outage (503) or a bug or misconfiguration (500). */
function failure(error: unknown): LongPollError {
  if (error instanceof LongPollError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  // A DatabaseError carries the server's SQLSTATE and a severity; socket errors carry neither.
  if (error instanceof Error && 'severity' in error && typeof code === 'string' && !TRANSIENT.test(code)) {
    const hint = code === '42P01' || code === '42883' ? ' (run engine.migrate() first?)' : '';
    return new LongPollError('internal', `The message store refused the statement${hint}`, { cause: error });
  }
  return new LongPollError('unavailable', 'The message store is unavailable; try again shortly', { cause: error, retryAfter: 1 });
}
