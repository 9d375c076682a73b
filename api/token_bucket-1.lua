-- Two token buckets on KEYS[1] (a HASH: r = request tokens, e = event tokens, t = last refill, ms), timed by the
-- server's clock. Each holds at most one second of its rate; a request takes 1 request token and one event
-- token per event. It is admitted when each bucket holds at least what it takes (or, for a batch bigger than a
-- bucket, when that bucket is full): a big batch may leave a bucket in debt, paid back before the next one.
-- a.rps, a.eps (0 = that limit is off), a.events.
-- Returns {1, 0, 0} when admitted (and takes the tokens), {0, which (1 requests, 2 events), ms to wait} when not.
local a = cmsgpack.unpack(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'r', 'e', 't')
local last = tonumber(s[3]) or now
local elapsed = math.max(0, now - last)
local function level(held, rate)
  if rate <= 0 then return 0 end
  return math.min(rate, (tonumber(held) or rate) + elapsed * rate / 1000)
end
local r, e = level(s[1], a.rps), level(s[2], a.eps)
local function wait(held, rate, cost)
  local need = math.min(cost, rate)
  if held >= need then return 0 end
  return math.ceil((need - held) * 1000 / rate)
end
local wr = a.rps > 0 and wait(r, a.rps, 1) or 0
local we = a.eps > 0 and wait(e, a.eps, a.events) or 0
if wr > 0 or we > 0 then
  redis.call('HSET', KEYS[1], 'r', tostring(r), 'e', tostring(e), 't', now)
  redis.call('PEXPIRE', KEYS[1], 60000)
  if wr >= we then return {0, 1, wr} end
  return {0, 2, we}
end
e = e - (a.eps > 0 and a.events or 0)
redis.call('HSET', KEYS[1], 'r', tostring(r - (a.rps > 0 and 1 or 0)), 'e', tostring(e), 't', now)
-- kept at least until a debt is paid back (a full bucket is what a missing key means)
local debt_ms = (e < 0 and a.eps > 0) and math.ceil(-e * 1000 / a.eps) or 0
redis.call('PEXPIRE', KEYS[1], 60000 + debt_ms)
return {1, 0, 0}
