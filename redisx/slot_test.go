package redisx

import "testing"

// The slots Redis's own documentation gives, and tags that put a key
// where asked. (TestRolesOnRedisCluster asks a server about harder keys.)
func TestSlot(t *testing.T) {
	for key, want := range map[string]int{
		"123456789": 12739, "foo": 12182, "bar": 5061, "{user1000}.following": 3443, "user1000": 3443, "": 0,
	} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	for _, slot := range []int{0, 1, 5061, 12739, clusterSlots - 1} {
		if got := Slot("prefix:health" + slotTag(slot)); got != slot {
			t.Errorf("slotTag(%d) puts a key in slot %d", slot, got)
		}
	}
}
