-- Pause every process; a shorter pause never cuts a longer one short.
-- KEYS[1] = paused (string; its TTL is the pause)
-- ARGV[1] = pause ms
-- Returns the pause in force, ms.
local left = redis.call('PTTL', KEYS[1])
local want = tonumber(ARGV[1])
if left >= want then return left end
redis.call('SET', KEYS[1], '1', 'PX', want)
return want
