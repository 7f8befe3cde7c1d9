-- The shared start of every capacity_*.lua script: tasks/capacity/leases.py prepends this file
-- to each of them, which then use its locals (now, now_s) and functions (totals, amount,
-- publish). It drops expired hosts and leases; `publish` rewrites the operator keys from the
-- live leases, so the totals can never drift from what is held. They expire with the last
-- lease, so they read 0 (absent) once everything has expired even if no process sweeps again.
-- KEYS[1] = hosts (zset host -> expires at ms)      KEYS[2] = host budgets (hash host -> json)
-- KEYS[3] = leases (zset lease -> expires at ms)    KEYS[4] = workers (hash lease -> json)
-- KEYS[5] = cpu allocated                           KEYS[6] = ram allocated
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s = string.format('%.0f', now)

local function sweep(zset, hash)
  local gone = redis.call('ZRANGEBYSCORE', zset, '-inf', now_s)
  if #gone > 0 then
    redis.call('HDEL', hash, unpack(gone))
    redis.call('ZREMRANGEBYSCORE', zset, '-inf', now_s)
  end
end

local function totals(hash, host)
  local cpu, ram, host_cpu, host_ram = 0, 0, 0, 0
  for _, raw in ipairs(redis.call('HVALS', hash)) do
    local w = cjson.decode(raw)
    cpu = cpu + w.cpu
    ram = ram + w.ram
    if w.host == host then
      host_cpu = host_cpu + w.cpu
      host_ram = host_ram + w.ram
    end
  end
  return cpu, ram, host_cpu, host_ram
end

local function amount(x)
  local s = string.format('%.4f', math.max(0, x)):gsub('0+$', ''):gsub('%.$', '')
  return s
end

local function publish(cpu, ram)
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('SET', KEYS[5], '0')
    redis.call('SET', KEYS[6], '0')
    return
  end
  redis.call('SET', KEYS[5], amount(cpu))
  redis.call('SET', KEYS[6], amount(ram))
  for _, key in ipairs({KEYS[3], KEYS[4], KEYS[5], KEYS[6]}) do
    redis.call('PEXPIREAT', key, last[2])
  end
end

sweep(KEYS[1], KEYS[2])
sweep(KEYS[3], KEYS[4])
