-- Extend a lease. A lease found gone is put back: the run renewing it is alive and its cost is
-- real (it expired while the run was stalled, or Redis lost its data). The row it works on is
-- guarded by the queue's own lease, not by this one. Runs after capacity_sweep.lua (prepended
-- by the loader).
-- KEYS: as capacity_sweep.lua
-- ARGV[1] = lease id, ARGV[2] = lease ms, ARGV[3] = json of the lease record
-- Returns 1 if the lease was held, 0 if it had to be put back.
local held = 1
redis.call('ZADD', KEYS[3], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[1])
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 0 then
  held = 0
  local record = cjson.decode(ARGV[3])
  record.startedAt = math.floor(now / 1000)
  redis.call('HSET', KEYS[4], ARGV[1], cjson.encode(record))
end
local cpu, ram = totals(KEYS[4], '')
publish(cpu, ram)
return held
