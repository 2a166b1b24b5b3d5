package metrics

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/projections"
)

// Registry holds every taskqueue metric. Build it with New.
type Registry struct {
	reg        *prometheus.Registry
	collectors []prometheus.Collector

	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	commands        *prometheus.CounterVec
	commandDuration *prometheus.HistogramVec
	eventsAppended  *prometheus.CounterVec
	repetitions     *prometheus.CounterVec
	lateness        prometheus.Histogram
	databaseErrors  *prometheus.CounterVec
	redisErrors     *prometheus.CounterVec
	scrapeErrors    *prometheus.CounterVec
	transient       *prometheus.CounterVec
	replicaReads    *prometheus.CounterVec
	degraded        *prometheus.GaugeVec

	mu      sync.Mutex
	sources Sources
}

// Sources are read at every scrape. Each may be nil (its metrics are then
// absent, e.g. no WebSocket hub on this instance).
type Sources struct {
	// Projections reports the projections (projections.Runner.Status).
	Projections func(ctx context.Context) ([]projections.Status, error)
	// ActiveQueues counts the queues with a task running (see
	// ActiveQueuesIn).
	ActiveQueues func(ctx context.Context) (int64, error)
	// DeadLetters counts the dead letters not retried (see DeadLettersIn).
	DeadLetters func(ctx context.Context) (int64, error)
	// WebSocket reports the hub's connections now and the slow clients it
	// cut off since it started (realtime.Hub.Stats: Connections,
	// SlowDisconnects).
	WebSocket func() (connections, slowDisconnects int64)
	// Relay reports the relay of integration events (relay.Relay.Lag):
	// its checkpoint and how long the first event it has not published yet
	// has been in the log. Nil where no relay runs (without Redis).
	Relay func(ctx context.Context) (eventstore.Position, time.Duration, error)
	// LogHorizon reports, on PostgreSQL, how long the oldest writing
	// transaction of the cluster has been open (it holds back every reader
	// of the log) and how many committed events wait behind it. Nil on
	// other backends.
	LogHorizon func() (age time.Duration, waiting int64)
}

// scrapeTimeout bounds the reads of Sources in one scrape.
const scrapeTimeout = 3 * time.Second

// New returns a registry with every metric registered, the Go runtime and
// process collectors included.
func New() *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	r.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskqueue_http_requests_total", Help: "HTTP requests by route pattern, method and status code.",
	}, []string{"route", "method", "status"})
	r.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "taskqueue_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method (WebSocket upgrades excluded).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method"})
	r.commands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskqueue_commands_total", Help: "Commands handled by name and outcome (ok, rejected, conflict, precondition_failed, canceled, error).",
	}, []string{"command", "outcome"})
	r.commandDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "taskqueue_command_duration_seconds", Help: "Command handling time by name.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"command"})
	r.eventsAppended = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskqueue_events_appended_total", Help: "Events appended to the log by this instance, by event type (idempotent retries not counted).",
	}, []string{"type"})
	r.repetitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskqueue_repetitions_total", Help: "Repetitions completed (RepetitionCompleted) and tasks failed (TaskFailed) appended by this instance.",
	}, []string{"outcome"})
	r.lateness = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "taskqueue_processor_lateness_seconds", Help: "How long after its due time a repetition completed by the processor was appended.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	})
	r.databaseErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskqueue_database_errors_total", Help: "Event store errors that are not the caller's (connection lost, timeouts, ...) by operation.",
	}, []string{"operation"})
	r.redisErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskqueue_redis_errors_total", Help: "Redis command errors by command (a missing key is not an error).",
	}, []string{"command"})
	r.scrapeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskqueue_scrape_errors_total", Help: "Sources that failed to answer during a scrape, by source.",
	}, []string{"source"})
	r.transient = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskqueue_transient_errors_total", Help: "Transient failures (a dependency unreachable, timed out, or its storage full) met by a component that retries, by component and kind (unavailable, storage-full).",
	}, []string{"component", "kind"})
	r.degraded = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "taskqueue_component_degraded", Help: "1 while a component is retrying through an outage of a dependency, else 0.",
	}, []string{"component"})
	r.replicaReads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskqueue_replica_reads_total", Help: "Read-side queries with TASKQUEUE_DATABASE_REPLICA_URLS, by outcome: replica (a standby answered), error (it failed; the primary answered), behind (it had not replayed the queue view's minVersion in time; the primary answered).",
	}, []string{"outcome"})
	for _, outcome := range []string{"completed", "failed"} {
		r.repetitions.WithLabelValues(outcome)
	}
	r.collectors = []prometheus.Collector{
		r.httpRequests, r.httpDuration, r.commands, r.commandDuration, r.eventsAppended, r.repetitions,
		r.lateness, r.databaseErrors, r.redisErrors, r.scrapeErrors, r.transient, r.degraded, r.replicaReads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		sourceCollector{r},
	}
	r.reg.MustRegister(r.collectors...)
	return r
}

// SetSources sets what is read at scrape time, replacing earlier sources.
func (r *Registry) SetSources(s Sources) {
	r.mu.Lock()
	r.sources = s
	r.mu.Unlock()
}

// Gatherer returns the registry, for tests and for pushing.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Handler serves the metrics in the Prometheus text format (GET /metrics).
// A failing source never fails the scrape.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObserveCommand records one command; pass it to command.Metrics:
//
//	handlers.Use(command.Metrics(reg.ObserveCommand))
func (r *Registry) ObserveCommand(name string, d time.Duration, err error) {
	r.commands.WithLabelValues(name, Outcome(err)).Inc()
	r.commandDuration.WithLabelValues(name).Observe(d.Seconds())
}

// Outcome classifies a command's error for taskqueue_commands_total.
func Outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, command.ErrConflict):
		return "conflict"
	case errors.Is(err, command.ErrPreconditionFailed):
		return "precondition_failed"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case errors.Is(err, domain.ErrInvalid), errors.Is(err, domain.ErrQueueFull),
		errors.Is(err, domain.ErrRequirementNotMet), errors.Is(err, domain.ErrUnknownTaskType),
		errors.Is(err, domain.ErrTaskNotFound), errors.Is(err, domain.ErrRepetitionNotDue),
		errors.Is(err, command.ErrIdempotencyKeyReused):
		return "rejected"
	}
	return "error"
}

// ObserveLateness records a processor lateness measured elsewhere (the
// Store decorator measures it already for completions by "system").
func (r *Registry) ObserveLateness(d time.Duration) { r.lateness.Observe(max(d, 0).Seconds()) }

// DatabaseError counts an error of a database operation made outside the
// decorated Store (e.g. a read-model query), unless it is a cancellation.
func (r *Registry) DatabaseError(operation string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		r.databaseErrors.WithLabelValues(operation).Inc()
	}
}

// TransientError implements faults.Observer.
func (r *Registry) TransientError(component string, kind faults.Kind) {
	r.transient.WithLabelValues(component, kind.String()).Inc()
}

// ReplicaRead counts a read-side query's outcome with replicas
// (query.Replicas.Observe).
func (r *Registry) ReplicaRead(outcome string) { r.replicaReads.WithLabelValues(outcome).Inc() }

// Degraded implements faults.Observer.
func (r *Registry) Degraded(component string, degraded bool) {
	v := 0.0
	if degraded {
		v = 1
	}
	r.degraded.WithLabelValues(component).Set(v)
}
