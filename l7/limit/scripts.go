package limit

// The Lua scripts are the Redis limiter's whole decision logic: each runs
// atomically inside redis-server, so the admission check always reads the
// shared state and N gateways together admit no more than the limit.
//
// Times are microseconds: from the caller (ARGV now >= 0) or from Redis
// TIME (now < 0), which keeps replicas with skewed clocks consistent. The
// stored timestamps alone decide; TTLs only collect idle keys, so a caller
// clock (tests) works the same way.
//
// KEYS, for the tenant (1-2) and the key (3-4): a HASH of the principal's
// state {r = GCRA timestamp of requests, k = GCRA timestamp of tokens,
// e = budget window end, s = nano-USD spent in it}, and a ZSET of
// concurrency leases (member ticket id, score lease expiry). The hash
// lives until its latest timestamp has passed; the ZSET for one lease.
//
// KEY 5 is the ticket: while the admission stands it holds the admission's
// reply (space-separated integers, the same array the admission returned),
// and once settled under doubt it holds "s" (a settled marker). It is what
// makes each script idempotent: an admission whose ticket exists returns
// the stored reply and changes nothing, a settle whose ticket is gone or
// marked changes nothing, so a retried or late-delivered copy of a call is
// applied at most once. It lives as long as the holder's heartbeats plus
// the settle horizon, and it shares the tenant's hash tag (one slot).

// scriptPrelude is shared: the clock and the hash's expiry.
const scriptPrelude = `
local now = tonumber(ARGV[1])
if now < 0 then
  -- Redis < 5 forbids writes after TIME unless effects are replicated.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local W = 60000000

local function load(k)
  local h = redis.call('HMGET', k, 'r', 'k', 'e', 's')
  return {r = tonumber(h[1]) or 0, k = tonumber(h[2]) or 0, e = tonumber(h[3]) or 0, s = tonumber(h[4]) or 0}
end

-- store writes the state and keeps it exactly as long as any of its
-- timestamps lies in the future.
local function store(k, st)
  local last = math.max(st.r, st.k, st.e)
  if last <= now then
    redis.call('DEL', k)
    return
  end
  redis.call('HSET', k, 'r', string.format('%d', st.r), 'k', string.format('%d', st.k),
    'e', string.format('%d', st.e), 's', string.format('%d', st.s))
  redis.call('PEXPIRE', k, math.ceil((last - now) / 1000) + 1000)
end
`

// extendTTL is shared: an existing key's TTL only ever grows here, so one
// holder's short lease never cuts another's renewed one.
const extendTTL = `
local function extendTTL(k, ms)
  local p = redis.call('PTTL', k)
  if p ~= -2 and p < ms then redis.call('PEXPIRE', k, ms) end
end
`

// parseTicket is shared: the integers a live ticket stores.
const parseTicket = `
local function parseTicket(v)
  local f = {}
  for x in string.gmatch(v, '%S+') do f[#f+1] = tonumber(x) end
  return f
end
`

// admitScript ARGV: now, lease, ticket id, reserve tokens, estimated
// nano-USD, then per principal (6-11 tenant, 12-17 key): tracked (0/1),
// requests/min, tokens/min, concurrent, budget nano-USD, budget window;
// 18: the ticket's TTL in ms. Returns {allowed, reason, retry, now, rq
// limit, rq remaining, rq reset, tk limit, tk remaining, tk reset, tenant
// budget end, key budget end}; reason 11 when the ticket was settled
// already (a copy of an admission that arrived after its settle).
const admitScript = scriptPrelude + extendTTL + parseTicket + `
local tv = redis.call('GET', KEYS[5])
if tv == 's' then
  return {0, 11, 0, now, 0, 0, 0, 0, 0, 0, 0, 0}
elseif tv then
  return parseTicket(tv)
end
local lease = tonumber(ARGV[2])
local id = ARGV[3]
local reserve = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local reason, retry, forever = 0, 0, false
-- The tightest request and token figures ({limit, remaining, reset}) as
-- charged, and the same as the state stands, uncharged: what a refused
-- request is shown, since nothing of it is charged.
local rq, tk, rq0, tk0 = {0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}

local function emission(units, limit)
  return math.ceil(units * W / limit)
end
local function remaining(tat, limit)
  local free = now + W - math.max(tat, now)
  if free <= 0 then return 0 end
  return math.floor(free / W * limit)
end
local function deny(code, r)
  if forever then return end
  if reason == 0 then reason = code end
  if r > retry then retry = r end
end
local function offer(o, limit, tat)
  local rem = remaining(tat, limit)
  if o[1] == 0 or rem < o[2] then o[1], o[2], o[3] = limit, rem, tat - now end
end

local function check(base, a, code)
  local p = {}
  if ARGV[a] ~= '1' then return p end
  p.tracked = true
  local rpm, tpm, conc = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3])
  local budget, bwin = tonumber(ARGV[a+4]), tonumber(ARGV[a+5])
  local st = load(KEYS[base])
  p.st = st
  if rpm > 0 then
    local tat = math.max(st.r, now)
    offer(rq0, rpm, tat)
    local nxt = tat + emission(1, rpm)
    if nxt - now > W then
      deny(code + 1, nxt - now - W)
      offer(rq, rpm, tat)
    else
      p.r = nxt
      offer(rq, rpm, nxt)
    end
  end
  if tpm > 0 then
    local tat = math.max(st.k, now)
    offer(tk0, tpm, tat)
    local nxt = tat + emission(reserve, tpm)
    if reserve > tpm then
      if not forever then reason, retry, forever = code + 5, 0, true end
      offer(tk, tpm, tat)
    elseif nxt - now > W then
      deny(code + 2, nxt - now - W)
      offer(tk, tpm, tat)
    else
      p.k = nxt
      offer(tk, tpm, nxt)
    end
  end
  if conc > 0 then
    local ck = KEYS[base+1]
    if redis.call('ZCARD', ck) >= conc then
      redis.call('ZREMRANGEBYSCORE', ck, '-inf', now)
    end
    if redis.call('ZCARD', ck) >= conc then
      deny(code + 3, 1000000)
    else
      p.conc = true
    end
  end
  if budget > 0 then
    local e, s = st.e, st.s
    if e <= now then e, s = now + bwin, 0 end
    if s >= budget or s + cost > budget then
      deny(code + 4, e - now)
    else
      p.e, p.s = e, s + cost
    end
  end
  return p
end

local function commit(base, p)
  if not p.tracked then return 0 end
  local st = p.st
  if p.r or p.k or p.e then
    if p.r then st.r = p.r end
    if p.k then st.k = p.k end
    if p.e then st.e, st.s = p.e, p.s end
    store(KEYS[base], st)
  end
  if p.conc then
    redis.call('ZADD', KEYS[base+1], now + lease, id)
    extendTTL(KEYS[base+1], math.ceil(lease / 1000) + 1000)
  end
  return p.e or 0
end

local tp = check(1, 6, 0)
local kp = check(3, 12, 5)
if reason ~= 0 then
  return {0, reason, retry, now, rq0[1], rq0[2], rq0[3], tk0[1], tk0[2], tk0[3], 0, 0}
end
local tb = commit(1, tp)
local kb = commit(3, kp)
local reply = {1, 0, 0, now, rq[1], rq[2], rq[3], tk[1], tk[2], tk[3], tb, kb}
local parts = {}
for i, x in ipairs(reply) do parts[i] = string.format('%d', x) end
redis.call('SET', KEYS[5], table.concat(parts, ' '), 'PX', tonumber(ARGV[18]))
return reply
`

// settleScript ARGV: now, ticket id, in doubt (0/1: the admission may not
// have landed, or may land again), served (0/1: 0 undoes the admission),
// reserved tokens, actual tokens, estimated nano-USD, actual nano-USD,
// settled marker TTL in ms, then per principal (10-13 tenant, 14-17 key):
// tracked (0/1), requests/min, tokens/min, budget window (0: no budget).
// Returns 1 when it corrected a standing admission, 2 when it charged a
// served request whose admission never landed, 0 when the ticket was
// settled already (a retry): nothing changed.
const settleScript = scriptPrelude + parseTicket + `
local id = ARGV[2]
local doubt, served = ARGV[3] == '1', ARGV[4] == '1'
local reserve, actual = tonumber(ARGV[5]), tonumber(ARGV[6])
local estimate, spend = tonumber(ARGV[7]), tonumber(ARGV[8])
local marker = tonumber(ARGV[9])

-- correct replaces the admission's reservation with what was used and
-- frees its slot; rend is the budget window end the admission charged.
local function correct(base, a, rend)
  if ARGV[a] ~= '1' then return end
  local rpm, tpm, bwin = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3])
  redis.call('ZREM', KEYS[base+1], id)
  local changed = false
  local st = load(KEYS[base])
  if rpm > 0 and not served then
    -- Rounded down like every refund.
    st.r = math.max(st.r, now) - math.floor(W / rpm)
    changed = true
  end
  if tpm > 0 and actual ~= reserve then
    local tat = math.max(st.k, now)
    if actual < reserve then
      -- Rounded down: a refund never frees more than was reserved.
      st.k = tat - math.floor((reserve - actual) * W / tpm)
    else
      st.k = tat + math.ceil((actual - reserve) * W / tpm)
    end
    changed = true
  end
  if bwin > 0 then
    if st.e == rend and st.e > now then
      st.s = math.max(0, st.s - estimate + spend)
      changed = true
    elseif st.e > now then
      st.s = st.s + spend
      changed = true
    elseif spend > 0 then
      st.e, st.s = now + bwin, spend
      changed = true
    end
  end
  if changed then store(KEYS[base], st) end
end

-- charge books a served request whose admission never landed: the request,
-- the tokens and the cost it used, as admission and settle together would.
local function charge(base, a)
  if ARGV[a] ~= '1' then return end
  local rpm, tpm, bwin = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3])
  local changed = false
  local st = load(KEYS[base])
  if rpm > 0 then
    st.r = math.max(st.r, now) + math.ceil(W / rpm)
    changed = true
  end
  if tpm > 0 and actual > 0 then
    st.k = math.max(st.k, now) + math.ceil(actual * W / tpm)
    changed = true
  end
  if bwin > 0 and spend > 0 then
    if st.e > now then
      st.s = st.s + spend
    else
      st.e, st.s = now + bwin, spend
    end
    changed = true
  end
  if changed then store(KEYS[base], st) end
end

local tv = redis.call('GET', KEYS[5])
if tv == 's' then return 0 end
if not tv then
  -- Without doubt a missing ticket was settled by an earlier copy of this
  -- call. In doubt the admission never landed: book what was used, and mark
  -- the ticket so that a copy of the admission arriving later is refused.
  if not doubt then return 0 end
  if served then
    charge(1, 10)
    charge(3, 14)
  end
  redis.call('SET', KEYS[5], 's', 'PX', marker)
  return 2
end
local f = parseTicket(tv)
correct(1, 10, f[11])
correct(3, 14, f[12])
if doubt then
  redis.call('SET', KEYS[5], 's', 'PX', marker)
else
  redis.call('DEL', KEYS[5])
end
return 1
`

// renewScript is the heartbeat of one ticket. KEYS: ticket, tenant leases,
// key leases; ARGV: now, ticket id, lease TTL, longest lease (both µs),
// ticket TTL in ms. A standing ticket's slots are pushed to now + TTL, but
// never past admission + longest lease, so a ticket its holder forgot
// (never settled, yet still heartbeaten) frees its slot all the same.
// Returns 1 when the ticket stands, 0 when it is settled or gone.
const renewScript = scriptPrelude + extendTTL + `
local tv = redis.call('GET', KEYS[1])
if not tv or tv == 's' then return 0 end
local admitted = tonumber(string.match(tv, '^%S+ %S+ %S+ (%S+)'))
local exp = math.min(now + tonumber(ARGV[3]), admitted + tonumber(ARGV[4]))
for i = 2, 3 do
  if redis.call('ZSCORE', KEYS[i], ARGV[2]) then
    redis.call('ZADD', KEYS[i], 'XX', exp, ARGV[2])
    extendTTL(KEYS[i], math.max(math.ceil((exp - now) / 1000), 0) + 1000)
  end
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return 1
`
