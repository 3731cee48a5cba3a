"""The Lua scripts of the Redis backend (see :mod:`statekeeper_server.engine.storage.redis` for
the key layout): each runs atomically on the Redis server, in one round trip."""

# Shared Lua helpers. Values of an entry hash, as HMGET returns them: {v, c, m, n, x}.
_LUA_COMMON = """
local p = ARGV[1]
local function read(key)
  local f = redis.call('HMGET', p .. 'k:' .. key, 'v', 'c', 'm', 'n', 'x')
  if not f[1] then return nil end
  return f
end
-- The store's counters, read on first use and written back once, by flush() at the end of a
-- writing script (so a batch of writes reads and writes each counter once): the revision,
-- the change in value bytes, and the change log's packed size and length.
local c = {bytes = 0}
local function current()
  if not c.rev then
    c.rev = tonumber(redis.call('GET', p .. 'rev') or '0')
    c.saved = c.rev
  end
  return c.rev
end
local function flush()
  if c.rev and c.rev ~= c.saved then redis.call('SET', p .. 'rev', c.rev) end
  if c.bytes ~= 0 then redis.call('INCRBY', p .. 'bytes', c.bytes) end
  if c.size then redis.call('SET', p .. 'logbytes', math.max(c.size, 0)) end
end
local function remove(key, e)
  redis.call('DEL', p .. 'k:' .. key)
  redis.call('ZREM', p .. 'idx', key)
  if e[5] then redis.call('ZREM', p .. 'exp', key) end
  c.bytes = c.bytes - #e[1]
end
local function removed_event(kind, key, e)
  return {kind, key, '', 0, 0, '', e[1], tonumber(e[2]), tonumber(e[3]), tonumber(e[4]),
          e[5] or ''}
end
local function emit(out, key, e, v)
  out[#out + 1] = key
  out[#out + 1] = v
  out[#out + 1] = e[2]
  out[#out + 1] = e[3]
  out[#out + 1] = e[4]
  out[#out + 1] = e[5] or ''
end
-- The history index `P hist` holds, at score 0, one member per event of the log: the event's
-- key, a NUL (no key holds one) and the revision as 8 bytes big-endian, so that members sort
-- by key, then revision. These are the members of revision `rev`'s `events`.
local function history_members(rev, events)
  local tail, members = string.char(0) .. struct.pack('>I8', rev), {}
  for i, ev in ipairs(events) do members[i] = ev[2] .. tail end
  return members
end
-- ZADD (at score 0) or ZREM `members` to or from the history index, 1,000 to a call.
local function mark(command, members)
  for first = 1, #members, 1000 do
    local args = {}
    for i = first, math.min(first + 999, #members) do
      if command == 'ZADD' then args[#args + 1] = 0 end
      args[#args + 1] = members[i]
    end
    redis.call(command, p .. 'hist', unpack(args))
  end
end
-- Log the events of revision `rev` (and index them), then drop the oldest log entries (and
-- their index members) while the log holds more than `maxlen` revisions or, once past
-- `maxbytes` (0: no bound) of packed events, until it is back to three quarters of that
-- (trimming is then not needed at every commit); at most 64 entries and, past the first, about
-- 256 KiB of them (or twice this entry), so a log far over its bounds shrinks with every write
-- and never all at once. The newest entry always stays; `P logbytes`
-- is the log's size (0 for a log older than the counter). The first entry of an empty log sets
-- `P histfrom` to 0: every entry is indexed (a log written before the index has no
-- `P histfrom`; the history script indexes it). `rev` becomes the store revision.
local function append(rev, events, maxlen, maxbytes)
  local log, packed = p .. 'log', cmsgpack.pack(events)
  c.rev = rev
  redis.call('XADD', log, rev .. '-0', 'e', packed)
  mark('ZADD', history_members(rev, events))
  if c.size then
    c.count = c.count + 1
  else
    c.size, c.count = tonumber(redis.call('GET', p .. 'logbytes') or '0'), redis.call('XLEN', log)
    if c.count == 1 then redis.call('SET', p .. 'histfrom', 0) end
  end
  c.size = c.size + #packed
  local size, count = c.size, c.count
  maxlen, maxbytes = tonumber(maxlen), tonumber(maxbytes)
  local goal = size
  if maxbytes > 0 and size > maxbytes then goal = math.floor(maxbytes * 3 / 4) end
  if count <= maxlen and size <= goal then return end
  local want, room, last, dropped = 64, math.max(262144, 2 * #packed), nil, {}
  if size <= goal then want = math.min(64, count - maxlen) end
  -- About the entries that fit in `room`, by the log's average entry size (XRANGE copies them).
  want = math.max(1, math.min(want, math.floor(room * count / size) + 1))
  for _, item in ipairs(redis.call('XRANGE', log, '-', '+', 'COUNT', want)) do
    if count <= 1 or (count <= maxlen and size <= goal) or room <= 0 then break end
    size, count, last = size - #item[2][2], count - 1, tonumber(string.match(item[1], '^(%d+)'))
    room = room - #item[2][2]
    for _, member in ipairs(history_members(last, cmsgpack.unpack(item[2][2]))) do
      dropped[#dropped + 1] = member
    end
  end
  if last then
    redis.call('XTRIM', log, 'MINID', (last + 1) .. '-0')
    mark('ZREM', dropped)
    c.size, c.count = size, count
  end
end
"""

# ARGV: prefix, now, maxlen, batch, maxbytes, value bytes. Expires up to ``batch`` due keys at
# one new revision, none after the one that brings their values to ``value bytes`` (each is
# copied into the change-log entry). Returns {revision or 0, next expiry time or ''}.
REAP_SCRIPT = (
    _LUA_COMMON
    + """
local now, room = tonumber(ARGV[2]), tonumber(ARGV[6])
local due = redis.call('ZRANGEBYSCORE', p .. 'exp', '-inf', ARGV[2], 'LIMIT', 0, ARGV[4])
local events = {}
for _, key in ipairs(due) do
  if room <= 0 then break end
  local e = read(key)
  if e and e[5] and tonumber(e[5]) <= now then
    remove(key, e)
    events[#events + 1] = removed_event(3, key, e)
    room = room - #e[1]
  else
    redis.call('ZREM', p .. 'exp', key)
  end
end
local rev = 0
if #events > 0 then
  rev = current() + 1
  append(rev, events, ARGV[3], ARGV[5])
end
flush()
local first = redis.call('ZRANGE', p .. 'exp', 0, 0, 'WITHSCORES')
return {rev, first[2] or ''}
"""
)

# One transaction of BATCH_SCRIPT, from its arguments at ARGV[i]: n compares, (key,
# mod_revision)*, n ops, (kind, key, value, expire)*. Returns its reply and the index of the
# next item; the reply is {0, key, expected, actual} on a failed compare, else {1, revision,
# results} where a put's result is {create_revision, version} and a delete's {} or the removed
# {v, c, m, n, x}.
_LUA_TXN = """
local now, maxlen, maxbytes = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local function txn(i)
  local ncmp = tonumber(ARGV[i]); i = i + 1
  local cmps = {}
  for j = 1, ncmp do cmps[j] = {ARGV[i], tonumber(ARGV[i + 1])}; i = i + 2 end
  local nops = tonumber(ARGV[i]); i = i + 1
  local ops = {}
  for j = 1, nops do ops[j] = {ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]}; i = i + 4 end

  local live, expired = {}, {}
  local function touch(key)
    if live[key] ~= nil then return end
    local e = read(key)
    if e and e[5] and tonumber(e[5]) <= now then
      expired[#expired + 1] = {key, e}
      e = nil
    end
    live[key] = e or false
  end
  for _, cmp in ipairs(cmps) do touch(cmp[1]) end
  for _, o in ipairs(ops) do touch(o[2]) end
  if #expired > 0 then
    local events = {}
    for _, item in ipairs(expired) do
      remove(item[1], item[2])
      events[#events + 1] = removed_event(3, item[1], item[2])
    end
    append(current() + 1, events, maxlen, maxbytes)
  end
  for _, cmp in ipairs(cmps) do
    local e = live[cmp[1]]
    local actual = 0
    if e then actual = tonumber(e[3]) end
    if actual ~= cmp[2] then return {0, cmp[1], cmp[2], actual}, i end
  end

  local rev = current() + 1
  local events, results = {}, {}
  for j, o in ipairs(ops) do
    local key = o[2]
    local e = live[key]
    if o[1] == 'p' then
      local create, version, old = rev, 1, 0
      if e then create = tonumber(e[2]); version = tonumber(e[4]) + 1; old = #e[1] end
      local hk = p .. 'k:' .. key
      if o[4] ~= '' then
        redis.call('HSET', hk, 'v', o[3], 'c', create, 'm', rev, 'n', version, 'x', o[4])
        redis.call('ZADD', p .. 'exp', o[4], key)
      else
        redis.call('HSET', hk, 'v', o[3], 'c', create, 'm', rev, 'n', version)
        if e and e[5] then
          redis.call('HDEL', hk, 'x')
          redis.call('ZREM', p .. 'exp', key)
        end
      end
      if not e then redis.call('ZADD', p .. 'idx', 0, key) end
      c.bytes = c.bytes + #o[3] - old
      if e then
        events[#events + 1] = {1, key, o[3], create, version, o[4], e[1], tonumber(e[2]),
                               tonumber(e[3]), tonumber(e[4]), e[5] or ''}
      else
        events[#events + 1] = {1, key, o[3], create, version, o[4], '', 0, 0, 0, ''}
      end
      results[j] = {create, version}
    elseif e then
      remove(key, e)
      events[#events + 1] = removed_event(2, key, e)
      results[j] = {e[1], e[2], e[3], e[4], e[5] or ''}
    else
      results[j] = {}
    end
  end
  if #events == 0 then return {1, rev - 1, results}, i end
  append(rev, events, maxlen, maxbytes)
  return {1, rev, results}, i
end
"""

# ARGV: prefix, now, maxlen, maxbytes, then per item either 'r', key (a read) or 't' and the
# arguments of a transaction (see _LUA_TXN). Runs the items in order, each atomic alone and at
# a revision of its own as if it ran alone, in one call (one round trip); returns their replies
# in order, a read's being {revision, v, c, m, n, x}: the store revision and the entry's hash
# fields (false where missing), read at one instant.
BATCH_SCRIPT = (
    _LUA_COMMON
    + _LUA_TXN
    + """
local replies, i = {}, 5
while i <= #ARGV do
  if ARGV[i] == 'r' then
    local f = redis.call('HMGET', p .. 'k:' .. ARGV[i + 1], 'v', 'c', 'm', 'n', 'x')
    replies[#replies + 1] = {current(), f[1], f[2], f[3], f[4], f[5]}
    i = i + 2
  else
    replies[#replies + 1], i = txn(i + 1)
  end
end
flush()
return replies
"""
)

# ARGV: prefix, now, low, low inclusive (1/0), high, high set (1/0), reverse (1/0), limit,
# budget, reads, revision (0: current), pattern cut (bytes of the key before the pattern
# applies), pattern tokens (cmsgpack of GlobPattern.tokens(), '' for none), keys only (1/0), max
# bytes (0: no limit), the pattern as Lua patterns (cmsgpack of GlobPattern.lua_patterns(), ''
# for none: the tokens are matched), live (1: leave out entries expired at `now`; '': only when
# reading the current revision), unpack bytes. One part of a Backend.scan page, read at one
# instant: it examines at most `budget` keys and resolves at most `reads` entries (a quarter of
# each at an earlier revision), and stops after one that brings the log entries it unpacked
# past `unpack bytes`. Returns {-1, oldest watchable revision} when the revision's history is
# gone, {-2, current revision} for a future revision, {-3} when the history index does not
# cover the revision yet (the history script indexes the log), else {revision, more (1/0),
# cursor, keys examined, live (1/0), bytes, (key, v, c, m, n, x)*}.
SCAN_SCRIPT = (
    _LUA_COMMON
    + """
local now = tonumber(ARGV[2])
local low, low_incl, high, high_set = ARGV[3], ARGV[4] == '1', ARGV[5], ARGV[6] == '1'
local reverse = ARGV[7] == '1'
local limit, budget, reads = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local want, cut, keys_only = tonumber(ARGV[11]), tonumber(ARGV[12]), ARGV[14] == '1'
local max_bytes, unpack_bytes = tonumber(ARGV[15]), tonumber(ARGV[18])
local tokens, pieces = nil, nil
if ARGV[13] ~= '' then tokens = cmsgpack.unpack(ARGV[13]) end
if ARGV[16] ~= '' then pieces = cmsgpack.unpack(ARGV[16]) end

-- Byte order (string comparison in Lua follows the locale).
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
-- The glob of GlobPattern.tokens() over the code points of the key after `cut` bytes.
local function one(t, c)
  if t[1] == 0 then return t[2] == c end
  if t[1] == 1 then return true end
  local hit = false
  for j = 3, #t, 2 do
    if c >= t[j] and c <= t[j + 1] then hit = true; break end
  end
  return hit ~= (t[2] == 1)
end
local function matches(k)
  local s, i, n = {}, cut + 1, #k
  while i <= n do
    local c = string.byte(k, i)
    local len = 1
    if c >= 0xF0 then len = 4 elseif c >= 0xE0 then len = 3 elseif c >= 0xC0 then len = 2 end
    if len > 1 then
      c = c % (2 ^ (7 - len))
      for j = i + 1, i + len - 1 do c = c * 64 + string.byte(k, j) % 64 end
    end
    s[#s + 1] = c
    i = i + len
  end
  local ti, si, star, mark = 1, 1, 0, 0
  while si <= #s do
    local t = tokens[ti]
    if t and t[1] == 2 then star = ti; mark = si; ti = ti + 1
    elseif t and one(t, s[si]) then ti = ti + 1; si = si + 1
    elseif star > 0 then ti = star + 1; mark = mark + 1; si = mark
    else return false end
  end
  while tokens[ti] and tokens[ti][1] == 2 do ti = ti + 1 end
  return ti > #tokens
end
-- The glob as the Lua patterns of GlobPattern.lua_patterns(), found one after the other.
local function found_in(k)
  local at = cut + 1
  for _, piece in ipairs(pieces) do
    local first, last = string.find(k, piece, at)
    if not first then return false end
    at = last + 1
  end
  return true
end
local function wanted(k)
  if not tokens then return true end
  if pieces then return found_in(k) end
  return matches(k)
end

local current = tonumber(redis.call('GET', p .. 'rev') or '0')
local rev = current
if want > current then return {-2, current} end
local live = ARGV[17] == '1' or (ARGV[17] == '' and (want == 0 or want == current))
local past = want > 0 and want < current
if past then
  local first = redis.call('XRANGE', p .. 'log', '-', '+', 'COUNT', 1)
  local oldest = current + 1
  if first[1] then oldest = tonumber(string.match(first[1][1], '^(%d+)')) end
  if want < oldest then return {-1, oldest} end
  local indexed = redis.call('GET', p .. 'histfrom')
  if not indexed or tonumber(indexed) > want + 1 then return {-3} end
  rev = want
  -- A key costs about four times as much here: a step of the history index's walk, a seek of
  -- it and perhaps a log entry to unpack.
  budget, reads = math.ceil(budget / 4), math.ceil(reads / 4)
end

-- A walk of the sorted set `set` in the scan's direction between lex bounds, `chunk` members
-- at a time (the key index), or one distinct key at a time (the history index, whose members
-- are key, NUL, revision: each step is one seek past every member of the key before).
local NUL, SOH = string.char(0), string.char(1)
local function walker(set, chunk, distinct)
  local lo = (low_incl and '[' or '(') .. low
  local hi = '+'
  if high_set then hi = '(' .. high end
  if distinct and not low_incl then lo = '[' .. low .. SOH end
  local batch, bi, done = {}, 1, false
  local function fetch()
    if reverse then
      batch = redis.call('ZREVRANGEBYLEX', set, hi, lo, 'LIMIT', 0, chunk)
    else
      batch = redis.call('ZRANGEBYLEX', set, lo, hi, 'LIMIT', 0, chunk)
    end
    bi, done = 1, #batch < chunk
    local last = batch[#batch]
    if last and distinct then
      last = string.sub(last, 1, #last - 9)
      batch[#batch] = last
      if reverse then hi = '(' .. last .. NUL else lo = '[' .. last .. SOH end
    elseif last then
      if reverse then hi = '(' .. last else lo = '(' .. last end
    end
  end
  return {
    peek = function()
      if bi > #batch and not done then fetch() end
      return batch[bi]
    end,
    skip = function() bi = bi + 1 end,
  }
end

-- The entry of key `k` at revision `rev`: for a past revision, where the history index has a
-- change of the key after it, the previous entry of that change (false where the key did not
-- exist), else the key's current entry. Log entries are unpacked once per call.
local after_want = ''
if past then after_want = NUL .. struct.pack('>I8', want + 1) end
local unpacked, seen = 0, {}
local function entry_at(k)
  if past then
    local change = redis.call('ZRANGEBYLEX', p .. 'hist', '[' .. k .. after_want,
                              '(' .. k .. SOH, 'LIMIT', 0, 1)[1]
    if change then
      local at = struct.unpack('>I8', change, #k + 2)
      local events = seen[at]
      if not events then
        local packed = redis.call('XRANGE', p .. 'log', at .. '-0', at .. '-0')[1][2][2]
        unpacked = unpacked + #packed
        events = {}
        for _, ev in ipairs(cmsgpack.unpack(packed)) do events[ev[2]] = ev end
        seen[at] = events
      end
      local ev = events[k]
      if ev[9] == 0 then return false end
      return {ev[7], ev[8], ev[9], ev[10], ev[11]}
    end
  end
  return read(k) or false
end

local chunk = math.min(math.max(math.min(limit, reads) + 1, 64), budget)
local keys = walker(p .. 'idx', chunk, false)
local changed = nil
if past then changed = walker(p .. 'hist', 1, true) end
local out = {rev, 0, '', 0, live and 1 or 0, 0}
local found, scanned, resolved, size = 0, 0, 0, 0
while true do
  -- The next key of the walk: `a` from the key index, `b` from the history index.
  local a, b = keys.peek(), changed and changed.peek()
  if a == nil and b == nil then break end
  local b_first = a == nil
  if a ~= nil and b ~= nil then
    if reverse then b_first = before(a, b) else b_first = before(b, a) end
  end
  if found == limit or scanned == budget or resolved == reads or unpacked >= unpack_bytes
      or (max_bytes > 0 and size >= max_bytes) then
    out[2] = 1
    break
  end
  local k = a
  if b_first then
    k = b
    changed.skip()
  else
    keys.skip()
    if a == b then changed.skip() end
  end
  scanned = scanned + 1
  out[3] = k
  if wanted(k) then
    resolved = resolved + 1
    local e = entry_at(k)
    if e and live and e[5] and e[5] ~= '' and tonumber(e[5]) <= now then e = nil end
    if e then
      found = found + 1
      size = size + #e[1] + #k
      emit(out, k, e, keys_only and '' or e[1])
    end
  end
end
out[4], out[6] = scanned, size
return out
"""
)

# ARGV: prefix, entries, bytes. Adds to the history index the events of the log entries it may
# lack (those before `P histfrom`, or every entry when it is missing: a log written before the
# index), newest first, up to `entries` of them and none after the one that brings their packed
# events to `bytes`. Returns the new `P histfrom`: every retained log entry from that revision
# on is indexed (0: all of them).
HISTORY_SCRIPT = (
    _LUA_COMMON
    + """
local from = redis.call('GET', p .. 'histfrom')
if from then
  from = tonumber(from)
else
  from = tonumber(redis.call('GET', p .. 'rev') or '0') + 1
end
local entries, bytes = tonumber(ARGV[2]), tonumber(ARGV[3])
while from > 0 and entries > 0 and bytes > 0 do
  local item = redis.call('XREVRANGE', p .. 'log', '(' .. from .. '-0', '-', 'COUNT', 1)[1]
  if not item then
    from = 0
  else
    from = tonumber(string.match(item[1], '^(%d+)'))
    mark('ZADD', history_members(from, cmsgpack.unpack(item[2][2])))
    entries, bytes = entries - 1, bytes - #item[2][2]
  end
end
redis.call('SET', p .. 'histfrom', from)
return from
"""
)
