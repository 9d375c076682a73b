-- A sliding-window rate limit on KEYS[1] (a ZSET of admitted request times, ms), timed by the server's clock.
-- a.window_ms, a.limit, a.token (makes each request's member unique).
-- Returns {1, remaining, 0} when admitted (and records it), {0, 0, ms until a slot frees} when refused.
local a = cmsgpack.unpack(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit = a.window_ms, a.limit
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used < limit then
  redis.call('ZADD', KEYS[1], now, now .. '-' .. a.token)
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, limit - used - 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
return {0, 0, wait}
