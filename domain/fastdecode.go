package domain

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The fast path of DecodeEvent: the events' JSON as EncodeEvent writes it
// (one flat object of known keys; ASCII strings without escapes; integers;
// RFC 3339 times; maps of item to count and a list of task IDs, or null)
// decoded
// without reflection, several times faster than encoding/json, for the
// rebuilds and catch-ups that decode every event of the log.
//
// It accepts only input on which it gives exactly what encoding/json gives
// (times through time.Time's own UnmarshalJSON, floats through
// strconv.ParseFloat as encoding/json does) and gives up on anything else:
// an unknown, repeated or differently cased key, any other null, an escape or a non-ASCII
// byte in a string, a number in a form an int field refuses, malformed
// JSON. DecodeEvent then decodes the data with encoding/json, so its
// results and its errors stay those of encoding/json. FuzzDecodeFast holds
// the two to the same events.

// Decoded events share what repeats among them (shared): the maps of items
// decoded from the same JSON text are one map, and task types and skills
// are one string each. An event's maps are read only, as those the domain
// emits are (a RepetitionStarted's are its catalog's): nothing may write
// into them. A rebuild decodes a million events, most of them a
// repetition with one to three maps of the few that a catalog's tasks
// have.

// maxShared bounds each table of shared values: past it, values are
// decoded anew each time.
const maxShared = 4096

// sharedTable maps a value's JSON text to its decoded value. Readers load
// the map without a lock; a writer copies it with one more entry.
type sharedTable[V any] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]V]
}

func (t *sharedTable[V]) get(text []byte) (V, bool) {
	var zero V
	m := t.m.Load()
	if m == nil {
		return zero, false
	}
	v, ok := (*m)[string(text)]
	return v, ok
}

func (t *sharedTable[V]) put(text []byte, v V) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var old map[string]V
	if p := t.m.Load(); p != nil {
		old = *p
	}
	if _, ok := old[string(text)]; ok || len(old) >= maxShared {
		return
	}
	m := maps.Clone(old)
	if m == nil {
		m = map[string]V{}
	}
	m[string(text)] = v
	t.m.Store(&m)
}

var shared struct {
	items sharedTable[map[ItemID]int64]
	names sharedTable[string]
}

// decodeFast decodes data as the current schema of t; ok is false when it
// gives up.
func decodeFast(t EventType, data []byte) (e Event, ok bool) {
	s := jsonScanner{b: data}
	switch t {
	case TypeTaskEnqueued:
		var v TaskEnqueued
		ok = s.object(func(k []byte) bool {
			switch string(k) {
			case "taskId":
				return s.str((*string)(&v.TaskID))
			case "type":
				return s.name((*string)(&v.Type))
			case "count":
				return s.int(&v.Count)
			case "position":
				return s.int(&v.Position)
			case "enqueuedAt":
				return s.time(&v.EnqueuedAt)
			}
			return false
		})
		e = v
	case TypeTaskRemoved:
		var v TaskRemoved
		ok = s.object(func(k []byte) bool {
			switch string(k) {
			case "taskId":
				return s.str((*string)(&v.TaskID))
			case "type":
				return s.name((*string)(&v.Type))
			case "done":
				return s.int(&v.Done)
			case "at":
				return s.time(&v.At)
			}
			return false
		})
		e = v
	case TypeTasksReordered:
		var v TasksReordered
		ok = s.object(func(k []byte) bool {
			switch string(k) {
			case "order":
				return s.taskIDs(&v.Order)
			case "at":
				return s.time(&v.At)
			}
			return false
		})
		e = v
	case TypeQueueStopped:
		var v QueueStopped
		ok = s.object(func(k []byte) bool {
			switch string(k) {
			case "reason":
				return s.str(&v.Reason)
			case "at":
				return s.time(&v.At)
			}
			return false
		})
		e = v
	case TypeQueueStarted:
		var v QueueStarted
		ok = s.object(func(k []byte) bool {
			if string(k) == "at" {
				return s.time(&v.At)
			}
			return false
		})
		e = v
	case TypeRepetitionStarted:
		var v RepetitionStarted
		ok = s.object(func(k []byte) bool {
			switch string(k) {
			case "taskId":
				return s.str((*string)(&v.TaskID))
			case "type":
				return s.name((*string)(&v.Type))
			case "number":
				return s.int(&v.Number)
			case "startedAt":
				return s.time(&v.StartedAt)
			case "dueAt":
				return s.time(&v.DueAt)
			case "durationMs":
				return s.int64(&v.DurationMs)
			case "efficiency":
				return s.float(&v.Efficiency)
			case "consumed":
				return s.items(&v.Consumed)
			case "skill":
				return s.name((*string)(&v.Skill))
			case "xp":
				return s.int64(&v.XP)
			case "outputs":
				return s.items(&v.Outputs)
			}
			return false
		})
		e = v
	case TypeRepetitionCompleted:
		var v RepetitionCompleted
		ok = s.object(func(k []byte) bool {
			switch string(k) {
			case "taskId":
				return s.str((*string)(&v.TaskID))
			case "type":
				return s.name((*string)(&v.Type))
			case "number":
				return s.int(&v.Number)
			case "skill":
				return s.name((*string)(&v.Skill))
			case "xp":
				return s.int64(&v.XP)
			case "granted":
				return s.items(&v.Granted)
			case "completedAt":
				return s.time(&v.CompletedAt)
			}
			return false
		})
		e = v
	case TypeRepetitionCancelled:
		var v RepetitionCancelled
		ok = s.object(func(k []byte) bool {
			switch string(k) {
			case "taskId":
				return s.str((*string)(&v.TaskID))
			case "number":
				return s.int(&v.Number)
			case "refunded":
				return s.items(&v.Refunded)
			case "at":
				return s.time(&v.At)
			}
			return false
		})
		e = v
	case TypeTaskCompleted:
		var v TaskCompleted
		ok = s.object(func(k []byte) bool {
			switch string(k) {
			case "taskId":
				return s.str((*string)(&v.TaskID))
			case "type":
				return s.name((*string)(&v.Type))
			case "count":
				return s.int(&v.Count)
			case "at":
				return s.time(&v.At)
			}
			return false
		})
		e = v
	case TypeTaskFailed:
		var v TaskFailed
		ok = s.object(func(k []byte) bool {
			switch string(k) {
			case "taskId":
				return s.str((*string)(&v.TaskID))
			case "type":
				return s.name((*string)(&v.Type))
			case "done":
				return s.int(&v.Done)
			case "count":
				return s.int(&v.Count)
			case "reason":
				return s.str(&v.Reason)
			case "at":
				return s.time(&v.At)
			}
			return false
		})
		e = v
	case TypeSkillLevelledUp:
		var v SkillLevelledUp
		ok = s.object(func(k []byte) bool {
			switch string(k) {
			case "skill":
				return s.name((*string)(&v.Skill))
			case "level":
				return s.int(&v.Level)
			case "at":
				return s.time(&v.At)
			}
			return false
		})
		e = v
	default:
		return nil, false
	}
	if !ok || !s.end() {
		return nil, false
	}
	return e, true
}

// jsonScanner reads the subset of JSON the fast path accepts; every method
// returns false when the input is outside it.
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte skips white space and then c.
func (s *jsonScanner) byte(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (s *jsonScanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// object reads an object whose every key is read by value (which reads
// the key's value and returns false for a key it does not know). A key
// seen twice gives up (encoding/json would merge maps).
func (s *jsonScanner) object(value func(key []byte) bool) bool {
	if !s.byte('{') {
		return false
	}
	if s.byte('}') {
		return true
	}
	var seen [12][]byte
	n := 0
	for {
		raw, ok := s.rawString()
		if !ok || !s.byte(':') {
			return false
		}
		k := raw[1 : len(raw)-1]
		for _, p := range seen[:n] {
			if string(p) == string(k) {
				return false
			}
		}
		if n == len(seen) || !value(k) {
			return false
		}
		seen[n] = k
		n++
		if s.byte('}') {
			return true
		}
		if !s.byte(',') {
			return false
		}
	}
}

// rawString reads a string of printable ASCII without escapes and returns
// it with its quotes.
func (s *jsonScanner) rawString() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i - 1
	for s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		switch {
		case c == '"':
			return s.b[start:s.i], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// name reads a string that repeats across events (a task type, a skill)
// as the string shared by every event.
func (s *jsonScanner) name(p *string) bool {
	raw, ok := s.rawString()
	if !ok {
		return false
	}
	if v, ok := shared.names.get(raw); ok {
		*p = v
		return true
	}
	*p = string(raw[1 : len(raw)-1])
	shared.names.put(raw, *p)
	return true
}

func (s *jsonScanner) str(p *string) bool {
	raw, ok := s.rawString()
	if ok {
		*p = string(raw[1 : len(raw)-1])
	}
	return ok
}

func (s *jsonScanner) time(p *time.Time) bool {
	raw, ok := s.rawString()
	return ok && p.UnmarshalJSON(raw) == nil
}

// number reads a JSON number; integer is false when it has a fraction or
// an exponent.
func (s *jsonScanner) number() (text []byte, integer, ok bool) {
	s.space()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	if !s.digits(true) {
		return nil, false, false
	}
	integer = true
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		integer = false
		if !s.digits(false) {
			return nil, false, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		integer = false
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits(false) {
			return nil, false, false
		}
	}
	return s.b[start:s.i], integer, true
}

// digits reads one or more digits; leading is true for an integer part,
// where JSON allows no leading zero.
func (s *jsonScanner) digits(leading bool) bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	n := s.i - start
	return n > 0 && !(leading && n > 1 && s.b[start] == '0')
}

func (s *jsonScanner) int64(p *int64) bool {
	text, integer, ok := s.number()
	if !ok || !integer {
		return false
	}
	v, err := strconv.ParseInt(string(text), 10, 64)
	*p = v
	return err == nil
}

func (s *jsonScanner) int(p *int) bool {
	var v int64
	ok := s.int64(&v) && int64(int(v)) == v
	*p = int(v)
	return ok
}

func (s *jsonScanner) float(p *float64) bool {
	text, _, ok := s.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(string(text), 64)
	*p = v
	return err == nil
}

// null reads a null.
func (s *jsonScanner) null() bool {
	s.space()
	if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// items reads an object of item to count into a map (empty for {}),
// shared by every event with the same text, or a null (a nil map, as
// EncodeEvent writes one).
func (s *jsonScanner) items(p *map[ItemID]int64) bool {
	if s.null() {
		*p = nil
		return true
	}
	s.space()
	start := s.i
	if end := objectEnd(s.b, start); end > start {
		if m, ok := shared.items.get(s.b[start:end]); ok {
			*p, s.i = m, end
			return true
		}
	}
	if !s.readItems(p) {
		return false
	}
	shared.items.put(s.b[start:s.i], *p)
	return true
}

// objectEnd returns the index just past the object that starts at
// b[start] (without nested objects or arrays), or -1.
func objectEnd(b []byte, start int) int {
	if start >= len(b) || b[start] != '{' {
		return -1
	}
	inString := false
	for i := start + 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' || c == '{' || c == '[':
			return -1
		case c == '}' && !inString:
			return i + 1
		}
	}
	return -1
}

// readItems reads an object of item to count into a new map.
func (s *jsonScanner) readItems(p *map[ItemID]int64) bool {
	if !s.byte('{') {
		return false
	}
	m := map[ItemID]int64{}
	*p = m
	if s.byte('}') {
		return true
	}
	for {
		var k string
		var v int64
		if !s.str(&k) || !s.byte(':') || !s.int64(&v) {
			return false
		}
		if _, dup := m[ItemID(k)]; dup {
			return false
		}
		m[ItemID(k)] = v
		if s.byte('}') {
			return true
		}
		if !s.byte(',') {
			return false
		}
	}
}

// taskIDs reads an array of strings into a new slice (empty for []), or a
// null (a nil slice).
func (s *jsonScanner) taskIDs(p *[]TaskID) bool {
	if s.null() {
		*p = nil
		return true
	}
	if !s.byte('[') {
		return false
	}
	out := []TaskID{}
	if !s.byte(']') {
		for {
			var id string
			if !s.str(&id) {
				return false
			}
			out = append(out, TaskID(id))
			if s.byte(']') {
				break
			}
			if !s.byte(',') {
				return false
			}
		}
	}
	*p = out
	return true
}
