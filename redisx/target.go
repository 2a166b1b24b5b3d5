package redisx

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster URL schemes of TASKQUEUE_REDIS_URL: redis+cluster:// (or
// rediss+cluster:// with TLS) followed by comma-separated seed addresses,
// e.g. redis+cluster://user:pass@10.0.0.1:6379,10.0.0.2:6379/?dial_timeout=1s.
// The query takes go-redis's cluster options (redis.ParseClusterURL).
const (
	clusterScheme    = "redis+cluster://"
	clusterTLSScheme = "rediss+cluster://"
)

// Target is a parsed TASKQUEUE_REDIS_URL: one Redis server (redis://,
// rediss://, unix://) or a Redis Cluster (redis+cluster://,
// rediss+cluster://). It opens go-redis clients of either kind behind
// redis.UniversalClient.
type Target struct {
	single  *redis.Options
	cluster *redis.ClusterOptions
}

// ParseTarget parses url. A cluster URL needs at least one seed address
// (the client discovers the others) and no database number (a cluster
// has only database 0).
func ParseTarget(url string) (Target, error) {
	lower := strings.ToLower(url)
	var scheme string
	switch {
	case strings.HasPrefix(lower, clusterScheme):
		scheme = "redis://"
	case strings.HasPrefix(lower, clusterTLSScheme):
		scheme = "rediss://"
	default:
		opts, err := redis.ParseURL(url)
		if err != nil {
			return Target{}, err
		}
		return Target{single: opts}, nil
	}
	rest := url[strings.Index(url, "://")+3:]
	hosts, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hosts, tail = rest[:i], rest[i:]
	}
	userinfo := ""
	if i := strings.LastIndex(hosts, "@"); i >= 0 {
		userinfo, hosts = hosts[:i+1], hosts[i+1:]
	}
	path, query, _ := strings.Cut(tail, "?")
	if path != "" && path != "/" && path != "/0" {
		return Target{}, fmt.Errorf("redis cluster URL: a cluster has no database %q (only 0)", strings.TrimPrefix(path, "/"))
	}
	var seeds []string
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			seeds = append(seeds, h)
		}
	}
	if len(seeds) == 0 {
		return Target{}, errors.New("redis cluster URL: no seed address (redis+cluster://host:port,host:port)")
	}
	params := make([]string, 0, len(seeds))
	for _, s := range seeds[1:] {
		params = append(params, "addr="+s)
	}
	if query != "" {
		params = append(params, query)
	}
	opts, err := redis.ParseClusterURL(scheme + userinfo + seeds[0] + "?" + strings.Join(params, "&"))
	if err != nil {
		return Target{}, fmt.Errorf("redis cluster URL: %w", err)
	}
	return Target{cluster: opts}, nil
}

// Cluster reports whether the target is a Redis Cluster.
func (t Target) Cluster() bool { return t.cluster != nil }

// Tuning is what the roles set on a client beyond the URL.
type Tuning struct {
	// Timeout bounds dialing, reads and writes (0: go-redis's default).
	Timeout time.Duration
	// PoolSize is the connections per server (per node on a cluster).
	PoolSize int
	// DialerRetries is how many times a connection is dialed before the
	// command fails (0: go-redis's default, 5).
	DialerRetries int
}

// NewClient opens a client of the target tuned by tu: a *redis.Client or
// a *redis.ClusterClient. It does not connect yet.
func (t Target) NewClient(tu Tuning) redis.UniversalClient {
	if t.cluster != nil {
		opts := *t.cluster
		tu.apply(&opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout, &opts.PoolSize, &opts.DialerRetries)
		return redis.NewClusterClient(&opts)
	}
	opts := *t.single
	tu.apply(&opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout, &opts.PoolSize, &opts.DialerRetries)
	return redis.NewClient(&opts)
}

// apply sets what tu sets, leaving the URL's values otherwise.
func (tu Tuning) apply(dial, read, write *time.Duration, pool, dialerRetries *int) {
	if tu.Timeout > 0 {
		*dial, *read, *write = tu.Timeout, tu.Timeout, tu.Timeout
	}
	if tu.PoolSize > 0 {
		*pool = tu.PoolSize
	}
	if tu.DialerRetries > 0 {
		*dialerRetries = tu.DialerRetries
	}
}
