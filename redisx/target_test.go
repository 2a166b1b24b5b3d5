package redisx_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/redisx"
)

// TASKQUEUE_REDIS_URL names one server or a cluster's seeds; what the
// roles tune (timeouts, pool) overrides the URL, the rest comes from it.
var targetCases = []struct {
	url     string
	cluster bool
	addrs   []string // of a cluster
	user    string
	tls     bool
	err     string // part of the error, "" when valid
}{
	{url: "redis://127.0.0.1:6379/0", addrs: []string{"127.0.0.1:6379"}},
	{url: "rediss://u:p@cache.example:6380/2", addrs: []string{"cache.example:6380"}, user: "u", tls: true},
	{url: "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002", cluster: true,
		addrs: []string{"10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:7002"}},
	{url: "REDISS+CLUSTER://u:p@10.0.0.1:7000,10.0.0.2:7000/?max_redirects=5", cluster: true,
		addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000"}, user: "u", tls: true},
	{url: "redis+cluster://10.0.0.1:7000/0", cluster: true, addrs: []string{"10.0.0.1:7000"}},
	{url: "redis+cluster://10.0.0.1:7000/3", err: "no database"},
	{url: "redis+cluster://", err: "no seed address"},
	{url: "redis+cluster://u:p@/", err: "no seed address"},
	{url: "redis+cluster://10.0.0.1:7000?pool=3", err: "unexpected option"},
	{url: "http://10.0.0.1:7000", err: "invalid URL scheme"},
}

func TestParseTarget(t *testing.T) {
	for _, tc := range targetCases {
		target, err := redisx.ParseTarget(tc.url)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one saying %q", tc.url, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if target.Cluster() != tc.cluster {
			t.Errorf("%s: cluster %v, want %v", tc.url, target.Cluster(), tc.cluster)
		}
		rdb := target.NewClient(redisx.Tuning{Timeout: 300 * time.Millisecond, PoolSize: 7})
		switch c := rdb.(type) {
		case *redis.ClusterClient:
			o := c.Options()
			if strings.Join(o.Addrs, ",") != strings.Join(tc.addrs, ",") || o.Username != tc.user ||
				(o.TLSConfig != nil) != tc.tls || o.PoolSize != 7 || o.ReadTimeout != 300*time.Millisecond {
				t.Errorf("%s: cluster options %v user %q tls %v pool %d read timeout %s", tc.url, o.Addrs, o.Username, o.TLSConfig != nil, o.PoolSize, o.ReadTimeout)
			}
		case *redis.Client:
			o := c.Options()
			if o.Addr != tc.addrs[0] || o.Username != tc.user || (o.TLSConfig != nil) != tc.tls ||
				o.PoolSize != 7 || o.DialTimeout != 300*time.Millisecond {
				t.Errorf("%s: options %s user %q tls %v pool %d dial timeout %s", tc.url, o.Addr, o.Username, o.TLSConfig != nil, o.PoolSize, o.DialTimeout)
			}
		}
		_ = rdb.Close()
	}
}
