package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Network is a virtual network of hosts on this machine, for tests that
// play real network faults between processes: each Host is a network
// namespace of its own (`ip netns`) with one interface on a private /24,
// plugged by a veth pair into a bridge that lives in a namespace of its
// own (the switch), so nothing of it is bridged in the machine's own
// namespace. The machine's namespace (the test itself) is plugged into the
// switch too, with the address .254, so the test reaches every host.
//
// Processes run on a host through Host.Command (`ip netns exec`). A Cut
// drops, in both hosts' namespaces (nftables, an input hook), the packets
// of one TCP port between two hosts: held connections see a real
// partition (nothing arrives, nothing is refused) until Heal.
//
// Names carry the test process's PID (namespaces "tqn<pid>-<k>-<host>",
// the machine's end of its veth "tqn<pid>x<k>"), so parallel runs never
// collide; each network's /24 is one that no route of the machine's
// namespace covers. Everything is removed when the test ends, and a new
// network first removes what runs of processes no longer alive left
// behind (a killed test runs no cleanup). Needs root, ip and nft: without
// them StartNetwork skips the test (fails it when services are required).
type Network struct {
	t      testing.TB
	prefix string // "tqn<pid>-<k>-"
	subnet string // "10.X.Y."
	root   string // the machine's end of its veth into the switch
	sw     string // the switch's namespace

	mu    sync.Mutex
	hosts []*Host
	cuts  int
}

// Host is one host of a Network: a network namespace with one address.
type Host struct {
	// Name is the host's short name ("db", "serve1").
	Name string
	// Netns is its network namespace's name (for `ip netns exec`).
	Netns string
	// IP is its address on the network.
	IP string
}

// Command returns a command that runs name with args on the host (`ip
// netns exec`, which execs the program: the process is the program itself).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Netns, name}, args...)...)
}

var networks struct {
	sync.Mutex
	n int
}

// staleName matches the names a Network gives, with the PID of its test.
var staleName = regexp.MustCompile(`^tqn([0-9]+)[-x]`)

// StartNetwork creates an empty network for t (add hosts with AddHost) and
// removes it, its hosts and whatever runs on them when t ends.
func StartNetwork(t testing.TB) *Network {
	t.Helper()
	if os.Geteuid() != 0 {
		needNetworkTools(t, "network namespaces need root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			needNetworkTools(t, tool+" is not on PATH")
		}
	}
	removeStaleNetworks(t)
	networks.Lock()
	k := networks.n
	networks.n++
	networks.Unlock()
	pid := os.Getpid()
	n := &Network{t: t, prefix: fmt.Sprintf("tqn%d-%d-", pid, k), root: fmt.Sprintf("tqn%dx%d", pid, k)}
	n.subnet = freeSubnet(t, pid*4+k)
	n.sw = n.prefix + "sw"
	t.Cleanup(n.remove)
	n.ip("netns", "add", n.sw)
	n.ip("-n", n.sw, "link", "add", "br0", "type", "bridge")
	n.ip("-n", n.sw, "link", "set", "br0", "up")
	n.ip("link", "add", n.root, "type", "veth", "peer", "name", "machine", "netns", n.sw)
	n.ip("-n", n.sw, "link", "set", "machine", "master", "br0", "up")
	n.ip("addr", "add", n.subnet+"254/24", "dev", n.root)
	n.ip("link", "set", n.root, "up")
	return n
}

func needNetworkTools(t testing.TB, why string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s and TASKQUEUE_TEST_REQUIRE_SERVICES=1", why)
	}
	t.Skip(why)
}

// AddHost adds a host named name (a few letters) to the network.
func (n *Network) AddHost(name string) *Host {
	n.t.Helper()
	n.mu.Lock()
	h := &Host{Name: name, Netns: n.prefix + name, IP: n.subnet + strconv.Itoa(len(n.hosts)+1)}
	n.hosts = append(n.hosts, h)
	port := "h" + strconv.Itoa(len(n.hosts))
	n.mu.Unlock()
	n.ip("netns", "add", h.Netns)
	n.ip("-n", h.Netns, "link", "set", "lo", "up")
	n.ip("-n", n.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.Netns)
	n.ip("-n", n.sw, "link", "set", port, "master", "br0", "up")
	n.ip("-n", h.Netns, "addr", "add", h.IP+"/24", "dev", "eth0")
	n.ip("-n", h.Netns, "link", "set", "eth0", "up")
	return h
}

// Cut is a partition of one TCP port between two hosts, until Heal.
type Cut struct {
	n      *Network
	chain  string
	hosts  []*Host
	healed bool
}

// Cut drops every packet between client and port on server, in both
// directions, at both ends (the input hooks of both namespaces): a
// connection open across it sees nothing arrive and nothing refused, a new
// one times out.
func (n *Network) Cut(client, server *Host, port int) *Cut {
	n.t.Helper()
	n.mu.Lock()
	n.cuts++
	c := &Cut{n: n, chain: fmt.Sprintf("cut%d", n.cuts), hosts: []*Host{server, client}}
	n.mu.Unlock()
	rules := []string{
		fmt.Sprintf("ip saddr %s tcp dport %d drop", client.IP, port), // on the server
		fmt.Sprintf("ip saddr %s tcp sport %d drop", server.IP, port), // on the client
	}
	for i, h := range c.hosts {
		n.nft(h, fmt.Sprintf("table inet taskqueue_test {\n chain %s {\n  type filter hook input priority 0; policy accept;\n  %s\n }\n}\n", c.chain, rules[i]))
	}
	return c
}

// Heal lifts the cut.
func (c *Cut) Heal() {
	c.n.t.Helper()
	if c.healed {
		return
	}
	c.healed = true
	for _, h := range c.hosts {
		c.n.nft(h, fmt.Sprintf("delete chain inet taskqueue_test %s\n", c.chain))
	}
}

func (n *Network) nft(h *Host, script string) {
	n.t.Helper()
	cmd := h.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("testenv: nft on %s: %v: %s\n%s", h.Name, err, out, script)
	}
}

func (n *Network) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("testenv: ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// remove kills whatever still runs on the hosts, and removes the hosts,
// the switch and the machine's veth.
func (n *Network) remove() {
	n.mu.Lock()
	hosts := n.hosts
	n.mu.Unlock()
	for _, h := range hosts {
		removeNetns(h.Netns)
	}
	removeNetns(n.sw)
	_ = exec.Command("ip", "link", "delete", n.root).Run()
}

// removeNetns kills the processes of a namespace this package made, then
// deletes it.
func removeNetns(name string) {
	out, _ := exec.Command("ip", "netns", "pids", name).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = exec.Command("ip", "netns", "delete", name).Run()
}

// removeStaleNetworks removes the namespaces and links of networks whose
// test process is gone.
func removeStaleNetworks(t testing.TB) {
	t.Helper()
	dead := func(name string) bool {
		m := staleName.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, _ := strconv.Atoi(m[1])
		return pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && dead(f[0]) {
			t.Logf("testenv: removing the namespace %s left by a test that is gone", f[0])
			removeNetns(f[0])
		}
	}
	out, _ = exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		// "7: tqn123x0@if6: <BROADCAST,…"
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if dead(name) {
			t.Logf("testenv: removing the link %s left by a test that is gone", name)
			_ = exec.Command("ip", "link", "delete", name).Run()
		}
	}
}

// freeSubnet returns "10.X.Y." of a /24 that no route or address of the
// machine's namespace overlaps, starting from one derived from seed.
func freeSubnet(t testing.TB, seed int) string {
	t.Helper()
	var used []*net.IPNet
	for _, args := range [][]string{{"-4", "route", "show", "table", "all"}, {"-4", "-o", "addr", "show"}} {
		out, err := exec.Command("ip", args...).Output()
		if err != nil {
			t.Fatalf("testenv: ip %s: %v", strings.Join(args, " "), err)
		}
		for _, word := range strings.Fields(string(out)) {
			if word == "default" {
				continue
			}
			if !strings.Contains(word, "/") {
				word += "/32"
			}
			if _, cidr, err := net.ParseCIDR(word); err == nil {
				used = append(used, cidr)
			}
		}
	}
	const span = 150 * 256 // 10.100.0.0 – 10.249.255.0
	for i := range span {
		c := (seed + i) % span
		_, candidate, _ := net.ParseCIDR(fmt.Sprintf("10.%d.%d.0/24", 100+c/256, c%256))
		clash := false
		for _, u := range used {
			if u.Contains(candidate.IP) || candidate.Contains(u.IP) {
				clash = true
				break
			}
		}
		if !clash {
			return fmt.Sprintf("10.%d.%d.", 100+c/256, c%256)
		}
	}
	t.Fatal("testenv: no free /24 in 10.100.0.0/16 – 10.249.0.0/16")
	return ""
}
