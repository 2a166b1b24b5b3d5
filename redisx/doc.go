// Package redisx owns taskqueue's Redis roles (github.com/redis/go-redis/v9),
// each optional: without TASKQUEUE_REDIS_URL every role works in-process.
// (It is not named redis so that it never clashes with go-redis's package
// name.)
//
// Key families (after Config.Prefix; the braces are placeholders, not
// hash tags). Renaming one orphans what running instances stored and
// splits a fleet in the middle of a deploy:
//
//	queue:{playerId}          QueueCache: cached queue view, JSON, TTL 5 min;
//	                          written only when newer (by version)
//	rate:ratelimit:{playerId} Limiter: GCRA state per player (redis_rate adds
//	rate:ratelimit:ip:{addr}  "rate:"), and per client address
//	session:{sessionId}       Sessions: JSON, TTL 24 h renewed by Refresh
//	progress:{playerId}       ProgressStore: the running repetition, TTL 1 h
//	presence:{playerId}       Presence: SET of the instances holding the player
//	presence-instance:{id}    Presence: SET of the players an instance holds
//	presence-instances        Presence: ZSET instance → alive until (ms)
//
// On a Redis Cluster (Config.URL redis+cluster://, see ParseTarget) the
// presence keys come after the hash tag {presence}: (presenceBase), since
// its scripts touch the keys of several players and instances at once;
// every other role touches one key per command and keeps its names. The
// cache's multi-key delete and flush go key by key and master by master
// there (Client.del, Client.eachServer).
//
// Pub/sub channels: session-revoked (a revoked session ID, so every
// instance closes its sockets at once) and realtime-wake ("<instance>
// <position>", the realtime hubs' cross-instance wake-up).
//
// Forgetting a player (Client.ForgetPlayer, Sessions.RevokePlayer) deletes
// the keys of every family named by the player, takes the player out of the
// presence sets and revokes the player's sessions (scanning session:*).
//
// # Redis going away
//
// Every role goes through one Client, which keeps Redis's health: a
// command failing for any reason but a missing key marks Redis down (logged
// once), after which no role tries Redis until a background ping answers
// (logged once). Meanwhile the cache is bypassed (every read loads), the
// rate limits are counted in-process, sessions are answered from this
// process's memory (revocations made here still hold; others fail open),
// wake-ups are not sent (the event store's own wake-up carries on) and
// presence is decided by each instance alone (then reconciled).
// When Redis comes back, the queue cache is flushed, since invalidations
// were lost.
//
// Every type is safe for concurrent use.
package redisx
