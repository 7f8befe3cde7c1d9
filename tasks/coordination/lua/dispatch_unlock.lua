-- Release the dispatch lock by compare-and-delete: only the holder releases it.
-- KEYS[1] = dispatch lock (string: the holder's token)
-- ARGV[1] = this dispatcher's token
-- Returns 1 if the lock was ours and is now released, else nil.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
