-- Reserve a run's cost: check and take in one step, so concurrent runs cannot both see the same
-- free capacity. Runs after capacity_sweep.lua (prepended by the loader).
-- KEYS: as capacity_sweep.lua
-- ARGV[1] = lease id, ARGV[2] = json of the lease record (cpu, ram, host, ...),
-- ARGV[3] = lease ms, ARGV[4] = host id ('' to check only the global budget)
-- Returns {1, expires at ms} or {0, reason ('no_host'|'host'|'global'), cpu short, ram short}.
local record = cjson.decode(ARGV[2])
local budget_cpu, budget_ram, host_cpu_max, host_ram_max = 0, 0, nil, nil
for i, raw in ipairs(redis.call('HGETALL', KEYS[2])) do
  if i % 2 == 0 then
    local b = cjson.decode(raw)
    budget_cpu = budget_cpu + b.cpu
    budget_ram = budget_ram + b.ram
  end
end
if ARGV[4] ~= '' then
  local raw = redis.call('HGET', KEYS[2], ARGV[4])
  if not raw then return {0, 'no_host', '0', '0'} end
  local b = cjson.decode(raw)
  host_cpu_max, host_ram_max = b.cpu, b.ram
elseif budget_cpu == 0 and budget_ram == 0 and redis.call('ZCARD', KEYS[1]) == 0 then
  return {0, 'no_host', '0', '0'}
end

local cpu, ram, host_cpu, host_ram = totals(KEYS[4], ARGV[4])
local eps = 1e-9
local function short(used, max) return math.max(0, used - max) end
if host_cpu_max then
  local c = short(host_cpu + record.cpu, host_cpu_max + eps)
  local r = short(host_ram + record.ram, host_ram_max + eps)
  if c > 0 or r > 0 then
    return {0, 'host', amount(c), amount(r)}
  end
end
local c = short(cpu + record.cpu, budget_cpu + eps)
local r = short(ram + record.ram, budget_ram + eps)
if c > 0 or r > 0 then
  return {0, 'global', amount(c), amount(r)}
end

local expires = string.format('%.0f', now + tonumber(ARGV[3]))
redis.call('ZADD', KEYS[3], expires, ARGV[1])
record.startedAt = math.floor(now / 1000)
redis.call('HSET', KEYS[4], ARGV[1], cjson.encode(record))
publish(cpu + record.cpu, ram + record.ram)
return {1, expires}
