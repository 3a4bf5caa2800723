// Every key and Lua script waitlock uses in Redis, in one place, so that the lock space they
// define can be read (and reproduced by other programs) here. Each script runs atomically on
// the server (EVAL, https://redis.io/docs/latest/develop/interactive/programmability/eval-intro/).
//
// For NAME, in the database of the URL (the db number is part of the lock space):
//   waitlock:{NAME}:slotK     a hash while slot K (0-based) is held, with a time to live (the
//                             lease): lease (the holder's random id), token, slots, host, pid,
//                             owner, uid, user, command, acquired (Unix seconds), client (the
//                             holder's CLIENT ID) and, once --done asked, request. Any key
//                             there holds the slot: another program may take it with
//                             SET waitlock:{NAME}:slotK ID NX PX MS, and waitlock's own
//                             hash makes that SET fail
//   waitlock:{NAME}:shared:ID a shared (reader) holder's hash, the same fields, with its ttl
//   waitlock:{NAME}:readers   a sorted set of the shared holders' lease ids by expiry (server
//                             time, ms): slot 0 is not free for an exclusive holder while a
//                             live one is there. It expires with the last of them
//   waitlock:{NAME}:token     the last fencing token given out (never deleted, never expires:
//                             a token must not go back while a resource may still hold one)
//   waitlock:{NAME}:queue     a sorted set of the waiters ('r' or 'w', then an id) by arrival
//                             (server time, µs); each look of a waiter renews its time to
//                             live, the waiter's, so it lapses with the last waiter
//   waitlock:{NAME}:waiter:ID a waiter's sign of life ('r' or 'w' then its id), refreshed while it waits; a waiter
//                             whose sign expired is dropped from the queue by the next look.
//                             A hash describing the waiter for --list: slots, shared, host,
//                             pid, owner, uid, user, command, client
//   channel waitlock:{NAME}:released   published on every release and every waiter leaving
// No key equals NAME, and no other application's keys start with `waitlock:{`.
// README's ACL SETUSER line lists every command run here and by the client (tested): a
// script given a new command needs it added there.

/** The prefix of every key of NAME. */
export const base = (name: string): string => `waitlock:{${name}}`;
export const slotKey = (name: string, slot: number): string => `${base(name)}:slot${slot}`;
export const sharedKey = (name: string, lease: string): string => `${base(name)}:shared:${lease}`;
export const readersKey = (name: string): string => `${base(name)}:readers`;
export const releasedChannel = (name: string): string => `${base(name)}:released`;

/** A holder's key, `waitlock:{NAME}:slotK` or `waitlock:{NAME}:shared:ID`, → [NAME, K (0 when shared), shared]; undefined for other keys. */
export function parseHolderKey(key: string): [string, number, boolean] | undefined {
  const m = /^waitlock:\{(.*)\}:(?:slot(\d+)|shared:[0-9a-f]+)$/s.exec(key);
  return m ? [m[1]!, Number(m[2] ?? 0), m[2] === undefined] : undefined;
}

/** A SCAN pattern matching the keys of NAME (glob characters in NAME escaped), or of every name. */
export const namePattern = (name?: string): string => (name === undefined ? "waitlock:{*" : `${base(name).replace(/[*?[\]\\]/g, "\\$&")}:*`);

/** Lines every script starts with: the server's clock is read (TIME) before writes. */
const PRELUDE = `if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)`;

/**
 * Take a slot of NAME if the waiters queued before us leave one free. KEYS[1] base(NAME);
 * ARGV: slots, preferred slot, lease id, ttl (ms), waiter id ('r' for a shared waiter or 'w'
 * then a random id; '': a single try, never queued), waiter sign-of-life ttl (ms), host, pid, owner, uid, user, command, client id,
 * shared ('1' or '0'). Tries the preferred slot, then 0..N-1; slot 0 is not free for an
 * exclusive holder while a shared one lives. A shared holder (one slot) joins the others
 * when no exclusive holder holds slot 0 and no exclusive waiter queued before it. Returns
 * {slot, token} when taken; otherwise queues the waiter (or refreshes its sign of life)
 * and returns false. A refused PEXPIRE is answered as that error, the key it was for
 * deleted.
 *
 * The fencing token is INCR of waitlock:{NAME}:token, raised to the server's clock in
 * microseconds when below it: a server restarted without persistence (the key lost) still
 * hands out larger tokens, as long as its clock does not go back.
 */
export const ACQUIRE = `${PRELUDE}
-- A key written here gets its expiry in this script or is removed: a PEXPIRE refused (an
-- ACL) between the write and the expiry must not leave a key that never expires.
local function expire(key, ms)
  local r = redis.pcall('PEXPIRE', key, ms)
  if type(r) == 'table' and r.err then
    redis.call('DEL', key)
    return r
  end
end
local base = KEYS[1]
local n, pref, shared = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[14] == '1'
local waiter = ARGV[5]
local queue, readers = base .. ':queue', base .. ':readers'
redis.call('ZREMRANGEBYSCORE', readers, '-inf', now_ms)
local live, rank, writersAhead = 0, nil, 0
for _, w in ipairs(redis.call('ZRANGE', queue, 0, -1)) do
  if redis.call('EXISTS', base .. ':waiter:' .. w) == 0 then
    redis.call('ZREM', queue, w)
  else
    if w == waiter then rank = live end
    if not rank then
      live = live + 1
      if string.sub(w, 1, 1) == 'w' then writersAhead = writersAhead + 1 end
    end
  end
end
local function free(s)
  return redis.call('EXISTS', base .. ':slot' .. s) == 0 and (s ~= 0 or shared or redis.call('ZCARD', readers) == 0)
end
local slot = nil
if shared then
  if free(0) and writersAhead == 0 then slot = 0 end
else
  local open = {}
  if free(pref) then open[#open + 1] = pref end
  for s = 0, n - 1 do
    if s ~= pref and free(s) then open[#open + 1] = s end
  end
  if #open > live then slot = open[1] end
end
if slot then
  local token = redis.call('INCR', base .. ':token')
  if token < now then
    token = now
    redis.call('SET', base .. ':token', string.format('%.0f', now))
  end
  token = string.format('%.0f', token)
  local key = shared and (base .. ':shared:' .. ARGV[3]) or (base .. ':slot' .. slot)
  redis.call('HSET', key, 'lease', ARGV[3], 'token', token, 'slots', n, 'shared', shared and 1 or 0, 'host', ARGV[7], 'pid', ARGV[8],
    'owner', ARGV[9], 'uid', ARGV[10], 'user', ARGV[11], 'command', ARGV[12], 'client', ARGV[13], 'acquired', t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
  local failed = expire(key, ARGV[4])
  if failed then return failed end
  if shared then
    redis.call('ZADD', readers, now_ms + tonumber(ARGV[4]), ARGV[3])
    if redis.call('PTTL', readers) < tonumber(ARGV[4]) then redis.call('PEXPIRE', readers, ARGV[4]) end
  end
  if waiter ~= '' then
    redis.call('ZREM', queue, waiter)
    redis.call('DEL', base .. ':waiter:' .. waiter)
  end
  if shared and live > 0 then redis.call('PUBLISH', base .. ':released', 'shared') end
  return {slot, token}
end
if waiter ~= '' then
  local sign = base .. ':waiter:' .. waiter
  if not rank then
    redis.call('HSET', sign, 'slots', n, 'shared', shared and 1 or 0, 'host', ARGV[7], 'pid', ARGV[8], 'owner', ARGV[9], 'uid', ARGV[10],
      'user', ARGV[11], 'command', ARGV[12], 'client', ARGV[13])
    redis.call('ZADD', queue, now, waiter)
  end
  local failed = expire(sign, ARGV[6])
  if failed then
    redis.call('ZREM', queue, waiter)
    return failed
  end
  redis.call('PEXPIRE', queue, ARGV[6])
end
return false`;

/** A waiter gives up: KEYS[1] base(NAME), ARGV[1] waiter id. The next waiter is told to look again. */
export const LEAVE = `redis.call('ZREM', KEYS[1] .. ':queue', ARGV[1])
redis.call('DEL', KEYS[1] .. ':waiter:' .. ARGV[1])
redis.call('PUBLISH', KEYS[1] .. ':released', 'left')
return 1`;

/**
 * Compare-and-extend: KEYS[1] the holder's key, KEYS[2] base(NAME); ARGV lease id, ttl
 * (ms), the holder's confirm window (ms). Returns {1, request} ('' when none) while the key
 * is still this lease's, {0, ''} once it is not (gone, another lease's, or not a hash:
 * another program's SET). Returns {2, ''} without extending when the last extension ran
 * longer ago than the confirm window (its age is ttl - PTTL): the holder has given the
 * lease up as lost by then, and an extension that arrives that late (a paused process, a
 * hung server, delayed packets) must not keep the slot blocked for another ttl. The key is
 * left in place: the lost holder's command may still be in its grace period. A shared
 * holder's expiry in the readers set moves with its key.
 */
export const EXTEND = `${PRELUDE}
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' or redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return {0, ''} end
local ttl = tonumber(ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left >= 0 and ttl - left > tonumber(ARGV[3]) then return {2, ''} end
redis.call('PEXPIRE', KEYS[1], ttl)
if redis.call('HGET', KEYS[1], 'shared') == '1' then
  local readers = KEYS[2] .. ':readers'
  redis.call('ZADD', readers, now_ms + ttl, ARGV[1])
  if redis.call('PTTL', readers) < ttl then redis.call('PEXPIRE', readers, ttl) end
end
return {1, redis.call('HGET', KEYS[1], 'request') or ''}`;

/**
 * Compare-and-delete: KEYS[1] the holder's key, KEYS[2] base(NAME); ARGV lease id. 1 when
 * released, 0 when it was no longer ours (gone, another lease's, or not a hash).
 */
export const RELEASE = `if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' or redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2] .. ':readers', ARGV[1])
redis.call('PUBLISH', KEYS[2] .. ':released', 'released')
return 1`;

/**
 * How many of slots 0..ARGV[1]-1 of KEYS[1] = base(NAME) are free for an exclusive request
 * (ARGV[2] '0': slot 0 not while a shared holder lives) or a shared one ('1').
 */
export const FREE = `${PRELUDE}
local readers = redis.call('ZCOUNT', KEYS[1] .. ':readers', '(' .. now_ms, '+inf')
local free = 0
for s = 0, tonumber(ARGV[1]) - 1 do
  if redis.call('EXISTS', KEYS[1] .. ':slot' .. s) == 0 and (s ~= 0 or readers == 0 or ARGV[2] == '1') then free = free + 1 end
end
return free`;

/**
 * For every key in KEYS: {key, milliseconds left, field, value, ...}; only {key, ms left}
 * for a key that is not a hash (another program's lock, e.g. SET NX PX); nothing for a key
 * gone meanwhile.
 */
export const DESCRIBE = `local out = {}
for i, k in ipairs(KEYS) do
  local kind = redis.call('TYPE', k)['ok']
  if kind ~= 'none' then
    local row = {k, redis.call('PTTL', k)}
    if kind == 'hash' then
      for _, f in ipairs(redis.call('HGETALL', k)) do row[#row + 1] = f end
    end
    out[#out + 1] = row
  end
end
return out`;

/**
 * The live waiters of the queues KEYS (each a base(NAME) .. ':queue'), in queue order:
 * {i (1-based index of the queue in KEYS), waiter id, score (µs), field, value, ...} for
 * each waiter whose sign of life is there; a waiter whose sign expired (killed) is left out.
 */
export const WAITERS = `local out = {}
for i, q in ipairs(KEYS) do
  local base = string.sub(q, 1, -7)
  local ranked = redis.call('ZRANGE', q, 0, -1, 'WITHSCORES')
  for j = 1, #ranked, 2 do
    local sign = base .. ':waiter:' .. ranked[j]
    if redis.call('TYPE', sign)['ok'] == 'hash' then
      local row = {i, ranked[j], ranked[j + 1]}
      for _, f in ipairs(redis.call('HGETALL', sign)) do row[#row + 1] = f end
      out[#out + 1] = row
    end
  end
end
return out`;

/** A queue's key, `waitlock:{NAME}:queue` → NAME; undefined for other keys. */
export function parseQueueKey(key: string): string | undefined {
  return /^waitlock:\{(.*)\}:queue$/s.exec(key)?.[1];
}

/**
 * --done: for KEYS[i] still held by lease ARGV[2i-1], sets request ARGV[2i] ('stop' or
 * 'release'). Returns the keys asked.
 */
export const REQUEST = `local asked = {}
for i, k in ipairs(KEYS) do
  if redis.call('HGET', k, 'lease') == ARGV[2 * i - 1] then
    redis.call('HSET', k, 'request', ARGV[2 * i])
    asked[#asked + 1] = k
  end
end
return asked`;

/** Of KEYS[i] held by lease ARGV[i], the ones still held. */
export const STILL_HELD = `local held = {}
for i, k in ipairs(KEYS) do
  if redis.call('HGET', k, 'lease') == ARGV[i] then held[#held + 1] = k end
end
return held`;
