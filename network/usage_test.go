package network

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadSockstatAndNetDev(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kv, err := readSockstat(write("sockstat", "sockets: used 12\nTCP: inuse 3 orphan 0 tw 1 alloc 5 mem 2\nUDP: inuse 2 mem 1\nUDPLITE: inuse 0\nRAW: inuse 1\nFRAG: inuse 0 memory 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]uint64{"sockets used": 12, "TCP inuse": 3, "TCP tw": 1, "UDP inuse": 2, "RAW inuse": 1} {
		if kv[k] != want {
			t.Errorf("%s = %d, want %d (all: %v)", k, kv[k], want, kv)
		}
	}
	var u Usage
	dev := "Inter-|   Receive                                                |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
		"    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n" +
		"  eth0:    5000      50    0    0    0     0          0         0     7000      70    0    0    0     0       0          0\n"
	if err := readNetDev(write("dev", dev), &u); err != nil {
		t.Fatal(err)
	}
	if u.RxBytes != 5000 || u.RxPackets != 50 || u.TxBytes != 7000 || u.TxPackets != 70 {
		t.Errorf("net/dev without lo: %+v", u)
	}
}
