package checkpoint

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fown"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
)

// TestImageCodecMatchesCrit writes a files image with go-criu's crit,
// reads it with vessel's codec, writes it back and has crit read that:
// both directions must agree entry by entry, magic included.
func TestImageCodecMatchesCrit(t *testing.T) {
	dir := t.TempDir()
	entries := []*fdinfo.FileEntry{
		{Type: fdinfo.FdTypes_REG.Enum(), Id: proto.Uint32(1), Reg: &regfile.RegFileEntry{Id: proto.Uint32(1), Flags: proto.Uint32(2), Pos: proto.Uint64(0), Fown: fownZero(), Name: proto.String("/bin/true")}},
		{Type: fdinfo.FdTypes_REG.Enum(), Id: proto.Uint32(7), Reg: &regfile.RegFileEntry{Id: proto.Uint32(7), Flags: proto.Uint32(0), Pos: proto.Uint64(9), Fown: fownZero(), Name: proto.String("vessel-exe"), Ext: proto.Bool(true)}},
	}
	img := &crit.CriuImage{Magic: "FILES"}
	for _, e := range entries {
		img.Entries = append(img.Entries, &crit.CriuEntry{Message: e})
	}
	src := filepath.Join(dir, "files.img")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := crit.New(nil, f, "", false, false).Encode(img); err != nil {
		t.Fatal(err)
	}
	f.Close()

	ours, err := readImage(src, &fdinfo.FileEntry{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ours.Entries) != len(entries) {
		t.Fatalf("read %d entries, want %d", len(ours.Entries), len(entries))
	}
	for i, e := range ours.Entries {
		if !proto.Equal(e.Message, entries[i]) {
			t.Errorf("entry %d: got %v, want %v", i, e.Message, entries[i])
		}
	}
	back := filepath.Join(dir, "back.img")
	if err := writeImage(back, ours); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(back)
	if !bytes.Equal(a, b) {
		t.Errorf("rewritten image differs from crit's (%d vs %d bytes)", len(b), len(a))
	}
	rf, err := os.Open(back)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	dec, err := crit.New(rf, nil, "", false, false).Decode(&fdinfo.FileEntry{})
	if err != nil {
		t.Fatalf("crit cannot read our image: %v", err)
	}
	if dec.Magic != "FILES" || len(dec.Entries) != len(entries) {
		t.Fatalf("crit read magic %q and %d entries", dec.Magic, len(dec.Entries))
	}

	for _, bad := range [][]byte{{1, 2}, append(a[:8:8], 9, 0, 0, 0, 1)} {
		p := filepath.Join(dir, "bad.img")
		os.WriteFile(p, bad, 0o600)
		if _, err := readImage(p, &fdinfo.FileEntry{}); err == nil {
			t.Errorf("damaged image %v read without error", bad)
		}
	}
}

func fownZero() *fown.FownEntry {
	z := proto.Uint32(0)
	return &fown.FownEntry{Uid: z, Euid: z, Signum: z, PidType: z, Pid: z}
}
