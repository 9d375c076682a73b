-- Give up the partition lease KEYS[1] when a.token still holds it. Returns 1 if released, else 0.
local a = cmsgpack.unpack(ARGV[1])
if redis.call('GET', KEYS[1]) == a.token then return redis.call('DEL', KEYS[1]) end
return 0
