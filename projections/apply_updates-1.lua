-- Run a fold batch's key updates (`projections/updates.py`) in one call, inside the fold's MULTI/EXEC.
-- KEYS[1]: a key of the partition (routes the call to the partition's slot; every key updated shares it).
-- a.commands: an array of commands `{name, key, args...}`; a HINCRBY command carries many `field, increment`
-- pairs and runs as one HINCRBY per pair, in order. ZADD scores arrive as msgpack numbers and are handed to
-- ZADD as Lua numbers.
local a = cmsgpack.unpack(ARGV[1])
for _, cmd in ipairs(a.commands) do
  if cmd[1] == 'HINCRBY' then
    local key = cmd[2]
    for i = 3, #cmd, 2 do
      redis.call('HINCRBY', key, cmd[i], cmd[i + 1])
    end
  else
    redis.call(unpack(cmd))
  end
end
return 0
