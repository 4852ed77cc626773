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
// KEYS, for the tenant (1-4) and the key (5-8): GCRA timestamp of requests,
// GCRA timestamp of tokens, ZSET of concurrency leases (member ticket id,
// score expiry), HASH budget {e = window end, s = nano-USD spent}.

// admitScript ARGV: now, lease, ticket id, reserve tokens, estimated
// nano-USD, then per principal (6-11 tenant, 12-17 key): tracked (0/1),
// requests/min, tokens/min, concurrent, budget nano-USD, budget window.
// Returns {allowed, reason, retry, now, rq limit, rq remaining, rq reset,
// tk limit, tk remaining, tk reset, tenant budget end, key budget end}.
const admitScript = `
local now = tonumber(ARGV[1])
if now < 0 then
  -- Redis < 5 forbids writes after TIME unless effects are replicated.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local lease = tonumber(ARGV[2])
local id = ARGV[3]
local reserve = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local W = 60000000
local reason, retry, forever = 0, 0, false
local rql, rqr, rqs, tkl, tkr, tks = 0, 0, 0, 0, 0, 0

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
local function getnum(k)
  local v = redis.call('GET', k)
  if v then return tonumber(v) end
  return 0
end

local function check(base, a, code)
  local p = {}
  if ARGV[a] ~= '1' then return p end
  p.tracked = true
  local rpm, tpm, conc = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3])
  local budget, bwin = tonumber(ARGV[a+4]), tonumber(ARGV[a+5])
  if rpm > 0 then
    local tat = math.max(getnum(KEYS[base]), now)
    local nxt = tat + emission(1, rpm)
    if nxt - now > W then
      deny(code + 1, nxt - now - W)
      if rql == 0 or remaining(tat, rpm) < rqr then rql, rqr, rqs = rpm, remaining(tat, rpm), tat - now end
    else
      p.req = nxt
      if rql == 0 or remaining(nxt, rpm) < rqr then rql, rqr, rqs = rpm, remaining(nxt, rpm), nxt - now end
    end
  end
  if tpm > 0 then
    local tat = math.max(getnum(KEYS[base+1]), now)
    local nxt = tat + emission(reserve, tpm)
    if reserve > tpm then
      if not forever then reason, retry, forever = code + 5, 0, true end
      if tkl == 0 or remaining(tat, tpm) < tkr then tkl, tkr, tks = tpm, remaining(tat, tpm), tat - now end
    elseif nxt - now > W then
      deny(code + 2, nxt - now - W)
      if tkl == 0 or remaining(tat, tpm) < tkr then tkl, tkr, tks = tpm, remaining(tat, tpm), tat - now end
    else
      p.tok = nxt
      if tkl == 0 or remaining(nxt, tpm) < tkr then tkl, tkr, tks = tpm, remaining(nxt, tpm), nxt - now end
    end
  end
  if conc > 0 then
    local ck = KEYS[base+2]
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
    local h = redis.call('HMGET', KEYS[base+3], 'e', 's')
    local e, s = tonumber(h[1]) or 0, tonumber(h[2]) or 0
    if e <= now then e, s = now + bwin, 0 end
    if s >= budget or s + cost > budget then
      deny(code + 4, e - now)
    else
      p.bend, p.spent = e, s + cost
    end
  end
  return p
end

local function setTAT(k, tat)
  if tat > now then
    redis.call('SET', k, string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  else
    redis.call('DEL', k)
  end
end

local function commit(base, p)
  if not p.tracked then return 0 end
  if p.req then setTAT(KEYS[base], p.req) end
  if p.tok then setTAT(KEYS[base+1], p.tok) end
  if p.conc then
    redis.call('ZADD', KEYS[base+2], now + lease, id)
    redis.call('PEXPIRE', KEYS[base+2], math.ceil(lease / 1000) + 1000)
  end
  if p.bend then
    redis.call('HSET', KEYS[base+3], 'e', string.format('%d', p.bend), 's', string.format('%d', p.spent))
    redis.call('PEXPIRE', KEYS[base+3], math.ceil((p.bend - now) / 1000) + 1000)
    return p.bend
  end
  return 0
end

local tp = check(1, 6, 0)
local kp = check(5, 12, 5)
if reason ~= 0 then
  return {0, reason, retry, now, rql, rqr, rqs, tkl, tkr, tks, 0, 0}
end
local tb = commit(1, tp)
local kb = commit(5, kp)
return {1, 0, 0, now, rql, rqr, rqs, tkl, tkr, tks, tb, kb}
`

// settleScript ARGV: now, ticket id, reserved tokens, actual tokens,
// estimated nano-USD, actual nano-USD, then per principal (7-10 tenant,
// 11-14 key): tracked (0/1), tokens/min, budget window (0: no budget),
// budget window end the reservation went into.
const settleScript = `
local now = tonumber(ARGV[1])
if now < 0 then
  -- Redis < 5 forbids writes after TIME unless effects are replicated.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local id = ARGV[2]
local reserve, actual = tonumber(ARGV[3]), tonumber(ARGV[4])
local estimate, spend = tonumber(ARGV[5]), tonumber(ARGV[6])
local W = 60000000

local function settle(base, a)
  if ARGV[a] ~= '1' then return end
  local tpm, bwin, rend = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3])
  if tpm > 0 and actual ~= reserve then
    local v = redis.call('GET', KEYS[base+1])
    local tat = now
    if v then tat = math.max(tonumber(v), now) end
    if actual < reserve then
      tat = tat - math.floor((reserve - actual) * W / tpm)
    else
      tat = tat + math.ceil((actual - reserve) * W / tpm)
    end
    if tat > now then
      redis.call('SET', KEYS[base+1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
    else
      redis.call('DEL', KEYS[base+1])
    end
  end
  redis.call('ZREM', KEYS[base+2], id)
  if bwin > 0 then
    local bk = KEYS[base+3]
    local h = redis.call('HMGET', bk, 'e', 's')
    local e, s = tonumber(h[1]) or 0, tonumber(h[2]) or 0
    if e == rend and e > now then
      s = math.max(0, s - estimate + spend)
    elseif e > now then
      s = s + spend
    elseif spend > 0 then
      e, s = now + bwin, spend
    else
      return
    end
    redis.call('HSET', bk, 'e', string.format('%d', e), 's', string.format('%d', s))
    redis.call('PEXPIRE', bk, math.ceil((e - now) / 1000) + 1000)
  end
end

settle(1, 7)
settle(5, 11)
return 1
`
