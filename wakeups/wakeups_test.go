package wakeups_test

import (
	"testing"

	"github.com/taskqueue/taskqueue/internal/redistest"
	"github.com/taskqueue/taskqueue/wakeups/wakeupstest"
)

func TestRedis(t *testing.T) {
	wakeupstest.Run(t, func(t *testing.T) wakeupstest.Backend { return wakeupstest.Redis(t, redistest.Shared(t)) })
}
