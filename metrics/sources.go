package metrics

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskqueue/taskqueue/projections"
)

var (
	descActiveQueues = prometheus.NewDesc("taskqueue_active_queues",
		"Queues with a repetition running (queue_status.running with tasks).", nil, nil)
	descDeadLetters = prometheus.NewDesc("taskqueue_dead_letters",
		"Commands in the dead letter queue not retried yet.", nil, nil)
	descWSConnections = prometheus.NewDesc("taskqueue_websocket_connections",
		"WebSocket connections subscribed now.", nil, nil)
	descWSSlow = prometheus.NewDesc("taskqueue_websocket_slow_disconnects_total",
		"WebSocket clients cut off for being too slow (close code 4408).", nil, nil)
	descProjPosition = prometheus.NewDesc("taskqueue_projection_position",
		"Sequence part of the projection's checkpoint (eventstore.Position.Seq).", []string{"projection"}, nil)
	descProjLagEvents = prometheus.NewDesc("taskqueue_projection_lag_events",
		"Events between the projection's checkpoint and the head of the log.", []string{"projection"}, nil)
	descProjLagSeconds = prometheus.NewDesc("taskqueue_projection_lag_seconds",
		"How long the first event the projection has not applied has been in the log.", []string{"projection"}, nil)
	descProjState = prometheus.NewDesc("taskqueue_projection_state",
		"1 for the state the projection is in, 0 for the others.", []string{"projection", "state"}, nil)
	descProjApplied = prometheus.NewDesc("taskqueue_projection_events_applied_total",
		"Events the projection applied in this process.", []string{"projection"}, nil)
	descRelayPosition = prometheus.NewDesc("taskqueue_relay_position",
		"Sequence part of the relay's checkpoint (eventstore.Position.Seq): integration events are published up to it.", nil, nil)
	descHorizonAge = prometheus.NewDesc("taskqueue_log_horizon_age_seconds",
		"PostgreSQL: how long the oldest writing transaction of the cluster has been open; every reader of the log (projections, the processor's schedule, live updates) waits below it.", nil, nil)
	descHorizonWaiting = prometheus.NewDesc("taskqueue_log_waiting_events",
		"PostgreSQL: events committed behind the oldest open writing transaction, not yet readable by any reader of the log.", nil, nil)
	descRelayLagSeconds = prometheus.NewDesc("taskqueue_relay_lag_seconds",
		"How long the first event the relay has not published yet has been in the log (0: none waits).", nil, nil)
)

// projectionStates is the closed set of projections.State, so every state
// has a series (0 or 1) and alerts can test "== 1".
var projectionStates = projections.States

// sourceCollector reads Sources at scrape time.
type sourceCollector struct{ r *Registry }

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActiveQueues, descDeadLetters, descWSConnections, descWSSlow,
		descProjPosition, descProjLagEvents, descProjLagSeconds, descProjState, descProjApplied,
		descRelayPosition, descRelayLagSeconds, descHorizonAge, descHorizonWaiting} {
		ch <- d
	}
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	c.r.mu.Lock()
	s := c.r.sources
	c.r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	count := func(name string, desc *prometheus.Desc, f func(context.Context) (int64, error)) {
		if f == nil {
			return
		}
		n, err := f(ctx)
		if err != nil {
			c.r.scrapeErrors.WithLabelValues(name).Inc()
			return
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n))
	}
	count("active_queues", descActiveQueues, s.ActiveQueues)
	count("dead_letters", descDeadLetters, s.DeadLetters)
	if s.WebSocket != nil {
		conns, slow := s.WebSocket()
		ch <- prometheus.MustNewConstMetric(descWSConnections, prometheus.GaugeValue, float64(conns))
		ch <- prometheus.MustNewConstMetric(descWSSlow, prometheus.CounterValue, float64(slow))
	}
	if s.Relay != nil {
		if pos, lag, err := s.Relay(ctx); err != nil {
			c.r.scrapeErrors.WithLabelValues("relay").Inc()
		} else {
			ch <- prometheus.MustNewConstMetric(descRelayPosition, prometheus.GaugeValue, float64(pos.Seq))
			ch <- prometheus.MustNewConstMetric(descRelayLagSeconds, prometheus.GaugeValue, lag.Seconds())
		}
	}
	if s.LogHorizon != nil {
		age, waiting := s.LogHorizon()
		ch <- prometheus.MustNewConstMetric(descHorizonAge, prometheus.GaugeValue, age.Seconds())
		ch <- prometheus.MustNewConstMetric(descHorizonWaiting, prometheus.GaugeValue, float64(waiting))
	}
	if s.Projections != nil {
		st, err := s.Projections(ctx)
		if err != nil {
			c.r.scrapeErrors.WithLabelValues("projections").Inc()
			return
		}
		for _, p := range st {
			ch <- prometheus.MustNewConstMetric(descProjPosition, prometheus.GaugeValue, float64(p.Position.Seq), p.Name)
			ch <- prometheus.MustNewConstMetric(descProjLagEvents, prometheus.GaugeValue, float64(p.LagEvents), p.Name)
			ch <- prometheus.MustNewConstMetric(descProjLagSeconds, prometheus.GaugeValue, p.LagSeconds, p.Name)
			ch <- prometheus.MustNewConstMetric(descProjApplied, prometheus.CounterValue, float64(p.EventsApplied), p.Name)
			for _, state := range projectionStates {
				v := 0.0
				if p.State == state {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descProjState, prometheus.GaugeValue, v, p.Name, string(state))
			}
		}
	}
}

// ActiveQueuesIn counts the queues with a repetition running in the
// queue_status read model of db (the view, whichever generation serves).
func ActiveQueuesIn(db projections.Querier) func(ctx context.Context) (int64, error) {
	return countIn(db, "active queues", `SELECT count(*) FROM queue_status WHERE running AND task_count > 0`)
}

// DeadLettersIn counts the dead letters not retried in db (the processor's
// processor_dead_letters table, migration 0030).
func DeadLettersIn(db projections.Querier) func(ctx context.Context) (int64, error) {
	return countIn(db, "dead letters", `SELECT count(*) FROM processor_dead_letters WHERE retried_at IS NULL`)
}

func countIn(db projections.Querier, what, q string) func(ctx context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		var n int64
		if err := db.QueryRow(ctx, q).Scan(&n); err != nil {
			return 0, fmt.Errorf("count %s: %w", what, err)
		}
		return n, nil
	}
}
