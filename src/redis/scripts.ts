import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * The bookkeeping both scripts start with, for one channel:
 * KEYS[1] the stream, KEYS[2] the channel's hash {epoch, floor, last};
 * ARGV[1] maxAge in ms (0: none), ARGV[2] an epoch to use if the channel has none,
 * ARGV[3] how long the hash must live at least from now, in ms (-1: forever).
 *
 * `floor` is the highest entry id that left the stream (trimmed, expired or deleted with it):
 * a cursor below it may have missed messages. `last` is the highest id ever appended in this
 * epoch. The epoch is new whenever the hash is gone (a flush, a restart without persistence),
 * so every cursor issued before fails with cursor_expired instead of skipping silently.
 */
const PROLOGUE = `
local stream, meta = KEYS[1], KEYS[2]
local maxAge, newEpoch, metaTtl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])

local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function below(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', meta, 'epoch', 'floor', 'last')
local epoch, floor, last = state[1], state[2], state[3]
local created = not epoch
if created then
  epoch, floor, last = newEpoch, '0-0', '0-0'
  -- The hash is gone but the stream survived (eviction, a manual DEL): new ids must go above
  -- its entries, and nothing before them is provable in the new epoch.
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #newest > 0 then
    floor, last = newest[1][1], newest[1][1]
  end
  redis.call('HSET', meta, 'epoch', epoch, 'floor', floor, 'last', last)
end
-- Extend, never shorten: a read keeps the epoch alive for a while, an append for maxAge and more.
if metaTtl < 0 then
  redis.call('PERSIST', meta)
elseif metaTtl > 0 then
  local ttl = redis.call('PTTL', meta)
  if (created or ttl ~= -1) and ttl < metaTtl then redis.call('PEXPIRE', meta, metaTtl) end
end
local expired = 0
if redis.call('EXISTS', stream) == 0 then
  -- Deleted, or expired with its newest message: everything up to last has left.
  if floor ~= last then
    floor = last
    redis.call('HSET', meta, 'floor', floor)
  end
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
`;

/**
 * Appends one message and announces it, atomically. After the prologue's ARGV:
 * ARGV[4] capacity, ARGV[5] the message's ULID, ARGV[6] its JSON, ARGV[7] the notification
 * channel, ARGV[8] what to publish on it.
 * Returns {epoch, entry id, trimmed by capacity, expired by age}.
 */
const APPEND = `${PROLOGUE}
local capacity = tonumber(ARGV[4])
-- Ids are chosen here, not by '*': above last even when the stream was deleted or the clock went back.
local lastMs, lastSeq = parse(last)
local id
if now > lastMs then id = string.format('%.0f-0', now) else id = string.format('%.0f-%.0f', lastMs, lastSeq + 1) end
redis.call('XADD', stream, id, 'id', ARGV[5], 'data', ARGV[6])
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
redis.call('HSET', meta, 'last', id, 'floor', floor)
if maxAge > 0 then redis.call('PEXPIRE', stream, maxAge) end
redis.call('PUBLISH', ARGV[7], ARGV[8])
return {epoch, id, trimmed, expired}
`;

/**
 * Reads after a cursor. After the prologue's ARGV: ARGV[4] the cursor's epoch ('' for no
 * cursor), ARGV[5] its entry id, ARGV[6] the limit.
 * Returns {'expired', epoch, floor, expired} or {'ok', epoch, last, expired, entries}.
 */
const READ = `${PROLOGUE}
local cursorEpoch, position = ARGV[4], ARGV[5]
local from = floor
if cursorEpoch ~= '' then
  -- A cursor ahead of last means acknowledged writes were lost (no fsync): never resume silently.
  if cursorEpoch ~= epoch or below(position, floor) or below(last, position) then
    return {'expired', epoch, floor, expired}
  end
  from = position
end
local entries = redis.call('XRANGE', stream, '(' .. from, '+', 'COUNT', tonumber(ARGV[6]))
return {'ok', epoch, last, expired, entries}
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
