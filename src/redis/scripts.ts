import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * The engine-wide bookkeeping every script starts with:
 * KEYS[1] the engine-wide hash {epoch, seq}; ARGV[1] two new epochs, 10 characters each: the
 * first for the engine if its epoch is gone or went back, the second for a channel that needs
 * one; ARGV[2] the highest `seq` the calling instance has seen in a reply.
 *
 * `seq` counts appends. It only grows, so a `seq` below what an instance has already seen means
 * the data set went back in time (restored from an older RDB or AOF, or a failover to a replica
 * that lagged): the engine-wide epoch is replaced, which expires every cursor issued before,
 * those of every channel's hash too (their `engine` field names the epoch they belong to).
 */
const ENGINE = `
local global, seen = KEYS[1], tonumber(ARGV[2])
local newEngineEpoch, newEpoch = string.sub(ARGV[1], 1, 10), string.sub(ARGV[1], 11, 20)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local engine = redis.call('HMGET', global, 'epoch', 'seq')
local engineEpoch, seq = engine[1], tonumber(engine[2]) or 0
if not engineEpoch or seq < seen then
  engineEpoch = newEngineEpoch
  if seq < seen then seq = seen end
  redis.call('HSET', global, 'epoch', engineEpoch, 'seq', string.format('%.0f', seq))
end
`;

/**
 * What both channel scripts do next, for one channel:
 * KEYS[2] the stream, KEYS[3] the channel's hash {epoch, floor, last, born, engine};
 * ARGV[3] maxAge in ms (0: none).
 *
 * `floor` is the highest entry id that left the stream (trimmed, expired or deleted with it):
 * a cursor below it may have missed messages. `last` is the highest id ever appended in this
 * epoch; `born` the Redis time (ms) the epoch began; `engine` the engine-wide epoch it belongs
 * to. The channel's epoch is new whenever the hash is gone (a flush, a restart without
 * persistence) or belongs to an earlier engine-wide epoch, so every cursor issued before fails
 * with cursor_expired instead of skipping silently.
 *
 * Nothing here writes for a channel that has neither a stream nor a hash: `open()` creates the
 * hash, and only the append script, or a read of a stream that survived its hash, calls it.
 */
const CHANNEL = `${ENGINE}
local stream, meta = KEYS[2], KEYS[3]
local maxAge = tonumber(ARGV[3])

local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function below(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end

local state = redis.call('HMGET', meta, 'epoch', 'floor', 'last', 'born', 'engine')
local epoch, floor, last, born = state[1], state[2], state[3], state[4]
-- A hash written before the engine-wide epoch existed (no 'engine' field) stays valid.
local current = epoch ~= false and (not state[5] or state[5] == engineEpoch)
local hasStream = redis.call('EXISTS', stream) == 1
local created = false

local function open()
  -- A new epoch. New ids must go above every id handed out before (a stream that survived
  -- its hash, or the last id of the hash it replaces), and nothing before them is provable.
  local top = '0-0'
  if epoch and last and below(top, last) then top = last end
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #newest > 0 and below(top, newest[1][1]) then top = newest[1][1] end
  epoch, floor, last, born = newEpoch, top, top, string.format('%.0f', now)
  redis.call('HSET', meta, 'epoch', epoch, 'floor', floor, 'last', last, 'born', born, 'engine', engineEpoch)
  current, created = true, true
end

local expired = 0
local function expire()
  if not hasStream then
    -- Deleted, or expired with its newest message: everything up to last has left.
    floor = last
  elseif maxAge > 0 and now >= maxAge then
    -- Entry ids are publish times in ms: ids below the threshold are older than maxAge.
    local threshold = string.format('%.0f-0', now - maxAge + 1)
    local old = redis.call('XREVRANGE', stream, '(' .. threshold, '-', 'COUNT', 1)
    if #old > 0 then
      expired = redis.call('XTRIM', stream, 'MINID', threshold)
      if below(floor, old[1][1]) then floor = old[1][1] end -- never down (a surviving stream's new epoch)
      redis.call('HSET', meta, 'floor', floor)
    end
  end
end
`;

/**
 * Appends one message and announces it, atomically. After the prologue's ARGV:
 * ARGV[4] how long the channel's hash must live at least from now, in ms (-1: forever),
 * ARGV[5] capacity, ARGV[6] the message's ULID, ARGV[7] its JSON, ARGV[8] the notification
 * channel, ARGV[9] what to publish on it.
 * Returns {epoch, entry id, trimmed by capacity, expired by age, seq}.
 */
const APPEND = `${CHANNEL}
if not current then open() end
-- Extend, never shorten: another instance may keep messages longer, or forever.
local metaTtl = tonumber(ARGV[4])
if metaTtl < 0 then
  redis.call('PERSIST', meta)
else
  local ttl = redis.call('PTTL', meta)
  if (created or ttl ~= -1) and ttl < metaTtl then redis.call('PEXPIRE', meta, metaTtl) end
end
expire()
local capacity = tonumber(ARGV[5])
-- Ids are chosen here, not by '*': above last even when the stream was deleted or the clock went back.
local lastMs, lastSeq = parse(last)
local id
if now > lastMs then id = string.format('%.0f-0', now) else id = string.format('%.0f-%.0f', lastMs, lastSeq + 1) end
redis.call('XADD', stream, id, 'id', ARGV[6], 'data', ARGV[7])
local trimmed = 0
local length = redis.call('XLEN', stream)
if length > capacity then
  local excess = length - capacity
  if excess <= 16 then
    -- The usual case (one over): the highest id that leaves, exactly.
    local gone = redis.call('XRANGE', stream, '-', '+', 'COUNT', excess)
    if below(floor, gone[#gone][1]) then floor = gone[#gone][1] end
    trimmed = redis.call('XTRIM', stream, 'MAXLEN', capacity)
  else
    -- capacity shrank: rather than load every entry that leaves, take the id just below the
    -- new first entry (at worst a cursor at the last one that left gets a false cursor_expired).
    trimmed = redis.call('XTRIM', stream, 'MAXLEN', capacity)
    local firstMs, firstSeq = parse(redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1][1])
    local before
    if firstSeq > 0 then
      before = string.format('%.0f-%.0f', firstMs, firstSeq - 1)
    else
      before = string.format('%.0f-999999999999999', firstMs - 1)
    end
    if below(floor, before) then floor = before end
  end
end
redis.call('HSET', meta, 'last', id, 'floor', floor, 'engine', engineEpoch)
if maxAge > 0 then redis.call('PEXPIRE', stream, maxAge) end
seq = redis.call('HINCRBY', global, 'seq', 1)
redis.call('PUBLISH', ARGV[8], ARGV[9])
return {epoch, id, trimmed, expired, seq}
`;

/**
 * Reads after a cursor. After the prologue's ARGV: ARGV[4] the cursor's epoch ('' for no
 * cursor), ARGV[5] its position, an entry id; ARGV[6] the limit; ARGV[7] how old, in ms, a
 * cursor read while the channel had no history may be (no channel's hash expires sooner after
 * its last append).
 * Returns {'expired', epoch, position, expired, seq} or {'ok', epoch, position, expired, seq,
 * entries, from}, where epoch and position make the cursor to resume from, and epoch and from
 * the one the entries were read after (for a channel without history, `from` is absent).
 *
 * A channel without history writes nothing: its cursor is {engine-wide epoch, now-0}, the same
 * shape as any other (a version of this engine that knows no engine-wide epoch answers it with
 * cursor_expired, not invalid_cursor), told apart by its epoch. Such a cursor
 * is good for the channel's first epoch begun since (born no earlier) if nothing has left it
 * yet; after a flush the engine-wide epoch differs, and a hash that was created and expired in
 * between would have lived longer than ARGV[7].
 */
const READ = `${CHANNEL}
local cursorEpoch, position, limit, fresh = ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
if hasStream and not current then open() end
-- Read while the channel had no history: it names the engine-wide epoch, never a channel's.
local empty = cursorEpoch ~= '' and cursorEpoch == engineEpoch and cursorEpoch ~= epoch
local readAt = 0
if empty then readAt = parse(position) end
local function stale()
  return readAt > now or readAt + fresh <= now
end
if not current then
  local at = string.format('%.0f-0', now)
  if cursorEpoch ~= '' and (not empty or stale()) then return {'expired', engineEpoch, at, 0, seq} end
  return {'ok', engineEpoch, at, 0, seq, {}}
end
expire()
local from = floor
if cursorEpoch ~= '' then
  if empty then
    if stale() or floor ~= '0-0' or not born or tonumber(born) < readAt then
      return {'expired', epoch, floor, expired, seq}
    end
    from = '0-0'
  else
    -- A cursor ahead of last means acknowledged writes were lost (no fsync): never resume silently.
    if cursorEpoch ~= epoch or below(position, floor) or below(last, position) then
      return {'expired', epoch, floor, expired, seq}
    end
    from = position
  end
end
local entries = {}
if hasStream then entries = redis.call('XRANGE', stream, '(' .. from, '+', 'COUNT', limit) end
return {'ok', epoch, last, expired, seq, entries, from}
`;

/**
 * The cursor just after a channel's newest message, what READ returns when it reads a channel
 * to its end without a cursor. Returns {epoch, position, expired, seq}. Like READ, it writes
 * nothing for a channel that has neither a stream nor a hash: its cursor is {engine-wide epoch,
 * now-0}.
 */
const TAIL = `${CHANNEL}
if hasStream and not current then open() end
if not current then return {engineEpoch, string.format('%.0f-0', now), 0, seq} end
expire()
return {epoch, last, expired, seq}
`;

/** Checks the engine-wide epoch only (see ENGINE). Returns {epoch, seq}. */
const CHECK = `${ENGINE}
return {engineEpoch, seq}
`;

/** A Lua script run by its SHA1, sent in full only when the server does not know it yet. */
export class Script {
  readonly #source: string;
  readonly #sha: string;

  constructor(source: string) {
    this.#source = source;
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.#sha, keys.length, ...keys, ...args);
    } catch (error) {
      // A restarted or flushed server forgets scripts.
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return redis.eval(this.#source, keys.length, ...keys, ...args);
    }
  }
}

/** The append script: XADD, trimming by count and age, PUBLISH. */
export const appendScript = new Script(APPEND);
/** The read script: epoch and floor checks, then XRANGE after the cursor. */
export const readScript = new Script(READ);
/** The tail script: the epoch checks, then the channel's last id. */
export const tailScript = new Script(TAIL);
/** The engine-wide check alone, run after a reconnect: it notices a data set that went back. */
export const checkScript = new Script(CHECK);
