-- Register (or refresh) a host's budget, or unregister it. Runs after capacity_sweep.lua
-- (prepended by the loader).
-- KEYS: as capacity_sweep.lua
-- ARGV[1] = host id, ARGV[2] = budget json ('' to unregister), ARGV[3] = ttl ms
-- Returns 1.
if ARGV[2] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
local cpu, ram = totals(KEYS[4], '')
publish(cpu, ram)
return 1
