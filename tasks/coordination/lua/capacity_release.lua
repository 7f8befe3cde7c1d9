-- Give a lease's capacity back, or only sweep. Runs after capacity_sweep.lua (prepended by the
-- loader).
-- KEYS: as capacity_sweep.lua
-- ARGV[1] = lease id ('' only sweeps)
-- Returns 1 if the lease was held.
local held = 0
if ARGV[1] ~= '' then
  held = redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
end
local cpu, ram = totals(KEYS[4], '')
publish(cpu, ram)
return held
