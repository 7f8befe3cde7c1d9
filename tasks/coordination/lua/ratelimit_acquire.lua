-- Admit one Gemini request, or say how long to wait. Checking and taking in one script closes
-- the race the seed had: two processes both reading "room for one more" and both calling Gemini.
-- Entries older than the window are trimmed first, so the counts are exact for the trailing
-- window ending now. A log member is "<request id>:<tokens>", so the log alone holds the state;
-- tpm_current is its running token total. log, rpm_current and tpm_current always expire
-- together, a window after the last admission, so a total never outlives its log.
-- If Redis loses its data (a restart without persistence), the window is forgotten while Gemini
-- still counts it: a process that knew the previous epoch then pauses everyone until a window
-- has passed since the new epoch began, so the forgotten calls cannot be admitted twice over.
-- KEYS[1] = log (zset "<request id>:<tokens>" -> admitted at, µs on Redis's clock)
-- KEYS[2] = rpm_current, KEYS[3] = tpm_current, KEYS[4] = paused, KEYS[5] = epoch ("<id>:<ms>")
-- ARGV[1] = request id, ARGV[2] = tokens estimate, ARGV[3] = max requests, ARGV[4] = max tokens,
-- ARGV[5] = window ms, ARGV[6] = the epoch this process knows ('' for none yet)
-- Returns {1, admitted at µs, epoch} or {0, wait ms, reason ('paused'|'rpm'|'tpm'|'forgotten'),
-- epoch}.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local window_us = tonumber(ARGV[5]) * 1000

local epoch = redis.call('GET', KEYS[5])
if not epoch then
  epoch = ARGV[1] .. ':' .. string.format('%.0f', now_ms)
  redis.call('SET', KEYS[5], epoch)
end
if ARGV[6] ~= '' and epoch ~= ARGV[6] then
  local left = tonumber(string.match(epoch, ':(%d+)$')) + tonumber(ARGV[5]) - now_ms
  if left > 0 and left > redis.call('PTTL', KEYS[4]) then
    redis.call('SET', KEYS[4], '1', 'PX', left)
  end
  return {0, math.max(1, left), 'forgotten', epoch}
end

local paused_ms = redis.call('PTTL', KEYS[4])
if paused_ms > 0 then
  return {0, paused_ms, 'paused', epoch}
end
-- Lua would print these µs timestamps with 14 significant digits; format them whole
local horizon = string.format('%.0f', now_us - window_us)

local tokens = tonumber(redis.call('GET', KEYS[3]) or '0')
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', horizon)
if #expired > 0 then
  for _, member in ipairs(expired) do
    tokens = tokens - tonumber(string.match(member, ':(%d+)$'))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
end
local count = redis.call('ZCARD', KEYS[1])
if count == 0 or tokens < 0 then tokens = 0 end

local need = tonumber(ARGV[2])
local max_requests = tonumber(ARGV[3])
local max_tokens = tonumber(ARGV[4])
local wait_us = 0
local reason = ''
if count + 1 > max_requests then
  local oldest = redis.call('ZRANGE', KEYS[1], count - max_requests, count - max_requests,
                            'WITHSCORES')
  wait_us = tonumber(oldest[2]) + window_us - now_us
  reason = 'rpm'
end
if tokens + need > max_tokens then
  -- walk from the oldest entry until enough tokens would have left the window
  local excess = tokens + need - max_tokens
  local tpm_wait_us = window_us
  local start = 0
  while excess > 0 do
    local batch = redis.call('ZRANGE', KEYS[1], start, start + 99, 'WITHSCORES')
    if #batch == 0 then break end
    for i = 1, #batch, 2 do
      excess = excess - tonumber(string.match(batch[i], ':(%d+)$'))
      if excess <= 0 then
        tpm_wait_us = tonumber(batch[i + 1]) + window_us - now_us
        break
      end
    end
    start = start + 100
  end
  if reason == '' or tpm_wait_us > wait_us then
    wait_us = tpm_wait_us
    reason = 'tpm'
  end
end
if reason ~= '' then
  if #expired > 0 then
    redis.call('SET', KEYS[2], count, 'KEEPTTL')
    redis.call('SET', KEYS[3], tokens, 'KEEPTTL')
  end
  return {0, math.max(1, math.ceil(wait_us / 1000)), reason, epoch}
end

local admitted = string.format('%.0f', now_us)
redis.call('ZADD', KEYS[1], admitted, ARGV[1] .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], count + 1, 'PX', ARGV[5])
redis.call('SET', KEYS[3], tokens + need, 'PX', ARGV[5])
return {1, admitted, epoch}
