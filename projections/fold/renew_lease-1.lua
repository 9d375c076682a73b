-- Extend the partition lease KEYS[1] by a.ttl_ms when a.token still holds it. Returns 1 if renewed, else 0.
local a = cmsgpack.unpack(ARGV[1])
if redis.call('GET', KEYS[1]) == a.token then return redis.call('PEXPIRE', KEYS[1], a.ttl_ms) end
return 0
