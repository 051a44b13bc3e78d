import { checkOption } from '../option-check.js';

/**
 * The SQL of the PostgreSQL engine: the migration, and the statements the engine runs. Every
 * name starts with the prefix, which is checked to be a plain lower-case identifier, so the
 * text can be assembled without quoting.
 */

/** Options recorded by the migration, so that `<prefix>_publish` trims as the engine does. */
export interface MigrationOptions {
  /**
   * Messages kept per channel by `<prefix>_publish`.
   * @default 1000
   */
  capacity?: number;
  /**
   * How long `<prefix>_publish` keeps a message, in milliseconds (by the database's clock);
   * `Infinity` keeps messages until `capacity` pushes them out.
   * @default 300_000
   */
  maxAge?: number;
}

const PREFIX = /^[a-z_][a-z0-9_]{0,39}$/;

/** Throws `invalid_option` unless `prefix` is a lower-case SQL identifier of at most 40 characters. */
export function checkPrefix(owner: string, prefix: unknown): asserts prefix is string {
  checkOption(typeof prefix === 'string' && PREFIX.test(prefix), owner, 'prefix', prefix, 'a lower-case SQL identifier (letters, digits, _) of at most 40 characters');
}

/** Throws `invalid_option` unless `capacity` and `maxAge` are what the engine accepts. */
export function checkLimits(owner: string, capacity: unknown, maxAge: unknown): void {
  checkOption(Number.isSafeInteger(capacity) && (capacity as number) > 0 && (capacity as number) <= 2_147_483_647, owner, 'capacity', capacity, 'a positive integer');
  checkOption(typeof maxAge === 'number' && maxAge > 0, owner, 'maxAge', maxAge, 'a positive number of milliseconds');
}

/** `maxAge` as the SQL functions take it: whole milliseconds, or NULL for "kept forever". */
export function maxAgeMs(maxAge: number): number | null {
  return Number.isFinite(maxAge) ? Math.ceil(maxAge) : null;
}

/**
 * The migration as SQL text, for migration tools: it creates (if missing) the tables
 * `<prefix>_settings`, `<prefix>_channels` and `<prefix>_messages`, the function
 * `<prefix>_publish(channel text, data jsonb) RETURNS text` and the functions the engine uses,
 * and records `capacity` and `maxAge` for `<prefix>_publish`. Running it again changes nothing
 * but those two settings and the functions' bodies.
 *
 * It starts with a transaction-scoped advisory lock, so that several instances migrating at
 * once take turns: run it inside one transaction (`migrate()` does).
 *
 * @example
 * ```ts
 * import { writeFileSync } from 'node:fs';
 * import { migrationSql } from 'longpoll-kit/postgres';
 *
 * writeFileSync('migrations/0042_longpoll.sql', migrationSql('longpoll', { capacity: 1000, maxAge: 300_000 }));
 * ```
 */
export function migrationSql(prefix = 'longpoll', options: MigrationOptions = {}): string {
  checkPrefix('migrationSql', prefix);
  const { capacity = 1000, maxAge = 300_000 } = options;
  checkLimits('migrationSql', capacity, maxAge);
  const p = prefix;
  const age = maxAgeMs(maxAge);
  return `-- longpoll-kit PostgresEngine, prefix ${p}. Run inside one transaction.
SELECT pg_advisory_xact_lock(hashtext('longpoll-kit migrate ${p}'));

-- One row: the epoch of cursors of channels that have no history (new when either table below
-- is truncated), and the limits <prefix>_publish trims by.
CREATE TABLE IF NOT EXISTS ${p}_settings (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  epoch text NOT NULL,
  capacity integer NOT NULL CHECK (capacity > 0),
  max_age_ms bigint CHECK (max_age_ms > 0)
);

-- One row per channel that has had messages: its epoch (new whenever the row is created), the
-- last position handed out and the lowest that may still be stored. Publishing updates the row,
-- so its row lock orders the channel's publishes: positions become visible in commit order.
CREATE TABLE IF NOT EXISTS ${p}_channels (
  channel text PRIMARY KEY,
  epoch text NOT NULL,
  first_position bigint NOT NULL,
  last_position bigint NOT NULL,
  last_ms bigint NOT NULL
);

-- The history. data is json, not jsonb: it keeps the published text (key order included).
CREATE TABLE IF NOT EXISTS ${p}_messages (
  channel text NOT NULL,
  position bigint NOT NULL,
  id text NOT NULL,
  data json NOT NULL,
  published_at timestamptz NOT NULL,
  PRIMARY KEY (channel, position)
);

CREATE OR REPLACE FUNCTION ${p}_base32(value bigint, width integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $fn$
  SELECT string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', ((value >> (5 * (width - 1 - i))) & 31)::integer + 1, 1), '' ORDER BY i)
  FROM generate_series(0, width - 1) AS i
$fn$;

CREATE OR REPLACE FUNCTION ${p}_new_epoch() RETURNS text
LANGUAGE sql VOLATILE AS $fn$
  SELECT ${p}_base32(floor(random() * 1125899906842624)::bigint, 10)
$fn$;

-- Appends one message and notifies ${p}_appended ('origin:position:channel'; NOTIFY is
-- delivered on commit only). Trims by age and capacity from the channel's lowest stored
-- position up, through the primary key: no scan of the rest of the history.
CREATE OR REPLACE FUNCTION ${p}_append(p_channel text, p_data json, p_capacity integer, p_max_age_ms bigint, p_origin text DEFAULT '')
RETURNS TABLE (message_id text, message_position bigint, channel_epoch text, published_ms bigint, trimmed bigint, expired bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_now bigint := floor(extract(epoch FROM clock_timestamp()) * 1000);
  v_first bigint;
  v_lowest bigint;
  v_bound bigint;
  v_created boolean;
  v_payload text;
BEGIN
  IF p_channel IS NULL OR p_channel = '' THEN
    RAISE EXCEPTION 'longpoll-kit: the channel must be a non-empty string' USING ERRCODE = '22023';
  END IF;
  INSERT INTO ${p}_channels AS c (channel, epoch, first_position, last_position, last_ms)
  VALUES (p_channel, ${p}_new_epoch(), 1, 1, v_now)
  ON CONFLICT (channel) DO UPDATE SET last_position = c.last_position + 1, last_ms = greatest(c.last_ms, v_now)
  RETURNING c.first_position, c.last_position, c.epoch, c.last_ms, (c.xmax = 0)
  INTO v_first, message_position, channel_epoch, published_ms, v_created;
  trimmed := 0;
  expired := 0;
  IF v_created THEN
    -- A new epoch starts at position 1: whatever an earlier row left behind is not its history.
    DELETE FROM ${p}_messages m WHERE m.channel = p_channel;
  ELSE
    v_lowest := v_first;
    IF p_max_age_ms IS NOT NULL THEN
      SELECT m.position INTO v_bound FROM ${p}_messages m
      WHERE m.channel = p_channel AND m.position >= v_first
        AND m.published_at > to_timestamp((v_now - p_max_age_ms) / 1000.0)
      ORDER BY m.position LIMIT 1;
      IF NOT FOUND THEN v_bound := message_position; END IF;
      IF v_bound > v_first THEN
        DELETE FROM ${p}_messages m WHERE m.channel = p_channel AND m.position >= v_first AND m.position < v_bound;
        GET DIAGNOSTICS expired = ROW_COUNT;
        v_first := v_bound;
      END IF;
    END IF;
    v_bound := message_position - p_capacity + 1;
    IF v_bound > v_first THEN
      DELETE FROM ${p}_messages m WHERE m.channel = p_channel AND m.position >= v_first AND m.position < v_bound;
      GET DIAGNOSTICS trimmed = ROW_COUNT;
      v_first := v_bound;
    END IF;
    IF v_first <> v_lowest THEN
      UPDATE ${p}_channels c SET first_position = v_first WHERE c.channel = p_channel;
    END IF;
  END IF;
  message_id := ${p}_base32(published_ms, 10) || ${p}_base32(message_position, 10) || ${p}_base32(floor(random() * 1073741824)::bigint, 6);
  INSERT INTO ${p}_messages (channel, position, id, data, published_at)
  VALUES (p_channel, message_position, message_id, p_data, to_timestamp(published_ms / 1000.0));
  v_payload := coalesce(p_origin, '') || ':' || message_position || ':' || p_channel;
  -- NOTIFY payloads must stay under 8000 bytes; '*' wakes every channel with held polls instead.
  IF octet_length(v_payload) >= 8000 THEN v_payload := '*'; END IF;
  PERFORM pg_notify('${p}_appended', v_payload);
  RETURN NEXT;
END
$fn$;

-- Publishes from SQL (any client, a trigger): the message exists, and wakes polls, if and only
-- if the calling transaction commits. Returns the id subscribers receive.
CREATE OR REPLACE FUNCTION ${p}_publish(channel text, data jsonb) RETURNS text
LANGUAGE sql VOLATILE AS $fn$
  SELECT a.message_id FROM ${p}_settings s, ${p}_append(channel, data::json, s.capacity, s.max_age_ms) a
$fn$;

-- Deletes the history of channels whose newest message is older than maxAge, and the rows of
-- channels that have held nothing for p_grace_ms more. One instance at a time; never waits.
CREATE OR REPLACE FUNCTION ${p}_sweep(p_max_age_ms bigint, p_grace_ms bigint)
RETURNS TABLE (swept_channel text, swept bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_cutoff bigint := floor(extract(epoch FROM clock_timestamp()) * 1000) - p_max_age_ms;
  r record;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext('longpoll-kit sweep ${p}')) THEN RETURN; END IF;
  FOR r IN SELECT c.channel AS name, c.first_position AS lowest, c.last_position AS highest FROM ${p}_channels c
    WHERE c.last_ms <= v_cutoff AND c.first_position <= c.last_position LIMIT 1000 FOR UPDATE SKIP LOCKED
  LOOP
    DELETE FROM ${p}_messages m WHERE m.channel = r.name AND m.position >= r.lowest AND m.position <= r.highest;
    GET DIAGNOSTICS swept = ROW_COUNT;
    UPDATE ${p}_channels c SET first_position = r.highest + 1 WHERE c.channel = r.name;
    IF swept > 0 THEN
      swept_channel := r.name;
      RETURN NEXT;
    END IF;
  END LOOP;
  DELETE FROM ${p}_channels c WHERE c.last_ms <= v_cutoff - p_grace_ms AND c.first_position > c.last_position;
END
$fn$;

-- A TRUNCATE of either table starts a new engine-wide epoch, so that cursors of channels that
-- had no history when they were read get cursor_expired rather than miss what was truncated.
CREATE OR REPLACE FUNCTION ${p}_truncated() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE ${p}_settings SET epoch = ${p}_new_epoch();
  RETURN NULL;
END
$fn$;

DO $do$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '${p}_messages_truncated' AND tgrelid = '${p}_messages'::regclass) THEN
    CREATE TRIGGER ${p}_messages_truncated BEFORE TRUNCATE ON ${p}_messages FOR EACH STATEMENT EXECUTE FUNCTION ${p}_truncated();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '${p}_channels_truncated' AND tgrelid = '${p}_channels'::regclass) THEN
    CREATE TRIGGER ${p}_channels_truncated BEFORE TRUNCATE ON ${p}_channels FOR EACH STATEMENT EXECUTE FUNCTION ${p}_truncated();
  END IF;
END
$do$;

INSERT INTO ${p}_settings (epoch, capacity, max_age_ms) VALUES (${p}_new_epoch(), ${capacity}, ${age ?? 'NULL'})
ON CONFLICT (singleton) DO UPDATE SET capacity = excluded.capacity, max_age_ms = excluded.max_age_ms;
`;
}

/** The statements the engine runs, for one prefix. */
export interface Statements {
  readonly append: string;
  readonly read: string;
  readonly earliest: string;
  readonly tail: string;
  readonly sweep: string;
  readonly notifications: string;
}

/** The engine's statements for `prefix` (already checked). */
export function statementsFor(p: string): Statements {
  return {
    append: `SELECT message_id, message_position, channel_epoch, published_ms, trimmed, expired FROM ${p}_append($1, $2::json, $3, $4, $5)`,
    // One statement, so one snapshot: the channel's row and its messages agree.
    read: `SELECT s.epoch AS global_epoch, floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint AS now_ms,
       c.epoch, c.first_position, c.last_position,
       m.position, m.id, m.data::text AS data, floor(extract(epoch FROM m.published_at) * 1000)::bigint AS ms
FROM ${p}_settings s
LEFT JOIN ${p}_channels c ON c.channel = $1
LEFT JOIN LATERAL (
  SELECT x.position, x.id, x.data, x.published_at FROM ${p}_messages x
  WHERE x.channel = $1 AND x.position > greatest($2::bigint, c.first_position - 1)
    AND ($4::bigint IS NULL OR x.published_at > statement_timestamp() - $4::bigint * interval '1 millisecond')
  ORDER BY x.position LIMIT $3
) m ON c.channel IS NOT NULL
ORDER BY m.position`,
    earliest: `SELECT s.epoch AS global_epoch, floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint AS now_ms,
       c.epoch, c.last_position,
       (SELECT x.position FROM ${p}_messages x
        WHERE x.channel = $1 AND x.position >= c.first_position
          AND ($2::bigint IS NULL OR x.published_at > statement_timestamp() - $2::bigint * interval '1 millisecond')
        ORDER BY x.position LIMIT 1) AS first_fresh
FROM ${p}_settings s LEFT JOIN ${p}_channels c ON c.channel = $1`,
    tail: `SELECT s.epoch AS global_epoch, floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint AS now_ms,
       c.epoch, c.last_position
FROM ${p}_settings s LEFT JOIN ${p}_channels c ON c.channel = $1`,
    sweep: `SELECT swept_channel, swept FROM ${p}_sweep($1, $2)`,
    notifications: `${p}_appended`,
  };
}
