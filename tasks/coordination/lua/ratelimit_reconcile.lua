-- Replace a request's estimate with the tokens Gemini reports, if the request is still in the
-- log (once it has left the window its tokens no longer count anyway). Expiries are kept as they
-- are, so the total still expires with its log.
-- KEYS[1] = log, KEYS[2] = tpm_current
-- ARGV[1] = request id, ARGV[2] = tokens estimate, ARGV[3] = actual tokens
-- Returns the change applied to the trailing-window token total.
local old_member = ARGV[1] .. ':' .. ARGV[2]
local admitted = redis.call('ZSCORE', KEYS[1], old_member)
if not admitted then return 0 end
redis.call('ZREM', KEYS[1], old_member)
redis.call('ZADD', KEYS[1], admitted, ARGV[1] .. ':' .. ARGV[3])
local delta = tonumber(ARGV[3]) - tonumber(ARGV[2])
local total = tonumber(redis.call('GET', KEYS[2]) or '0') + delta
redis.call('SET', KEYS[2], math.max(0, total), 'KEEPTTL')
return delta
