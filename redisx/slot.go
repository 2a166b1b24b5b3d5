package redisx

import (
	"strconv"
	"strings"
	"sync"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// Slot returns the Redis Cluster hash slot of key: the CRC16 (XMODEM) of
// its hash tag (the text between its first '{' and the next '}', when
// not empty) or else of the whole key, modulo 16384.
func Slot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % clusterSlots
}

// slotTags caches slotTag's answers.
var slotTags sync.Map // int -> string

// slotTag returns a hash tag ("{n}") that puts a key into slot: the
// smallest n whose text hashes there (found in some 16,000 tries, then
// kept).
func slotTag(slot int) string {
	if t, ok := slotTags.Load(slot); ok {
		return t.(string)
	}
	for n := 0; ; n++ {
		s := strconv.Itoa(n)
		if Slot(s) == slot {
			t := "{" + s + "}"
			slotTags.Store(slot, t)
			return t
		}
	}
}
