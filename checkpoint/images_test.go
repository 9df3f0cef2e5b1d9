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
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/stats"
)

func fownZero() *fown.FownEntry {
	z := proto.Uint32(0)
	return &fown.FownEntry{Uid: z, Euid: z, Signum: z, PidType: z, Pid: z}
}

func writeCrit(t *testing.T, path, magic string, msgs ...proto.Message) {
	t.Helper()
	img := &crit.CriuImage{Magic: magic}
	for _, m := range msgs {
		img.Entries = append(img.Entries, &crit.CriuEntry{Message: m})
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := crit.New(nil, f, "", false, false).Encode(img); err != nil {
		t.Fatal(err)
	}
}

func readCrit(t *testing.T, path string, typ proto.Message) *crit.CriuImage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := crit.New(f, nil, "", false, false).Decode(typ)
	if err != nil {
		t.Fatalf("crit cannot read %s: %v", path, err)
	}
	return img
}

// TestImageCodecMatchesCrit: an image written by go-criu's crit is read
// entry for entry and written back byte for byte by vessel's codec.
func TestImageCodecMatchesCrit(t *testing.T) {
	dir := t.TempDir()
	entries := []*fdinfo.FileEntry{
		{Type: fdinfo.FdTypes_REG.Enum(), Id: proto.Uint32(1), Reg: &regfile.RegFileEntry{Id: proto.Uint32(1), Flags: proto.Uint32(2), Pos: proto.Uint64(0), Fown: fownZero(), Name: proto.String("/bin/true")}},
		{Type: fdinfo.FdTypes_PIPE.Enum(), Id: proto.Uint32(7)},
	}
	src := filepath.Join(dir, "files.img")
	writeCrit(t, src, "FILES", entries[0], entries[1])
	ours, err := readImage(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(ours.Entries) != len(entries) {
		t.Fatalf("read %d entries, want %d", len(ours.Entries), len(entries))
	}
	for i, raw := range ours.Entries {
		got := &fdinfo.FileEntry{}
		if err := proto.Unmarshal(raw, got); err != nil || !proto.Equal(got, entries[i]) {
			t.Errorf("entry %d: got %v (%v), want %v", i, got, err, entries[i])
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
	for _, bad := range [][]byte{{1, 2}, append(a[:8:8], 9, 0, 0, 0, 1)} {
		p := filepath.Join(dir, "bad.img")
		os.WriteFile(p, bad, 0o600)
		if _, err := readImage(p); err == nil {
			t.Errorf("damaged image %v read without error", bad)
		}
	}
}

// TestExternalExeRewritesImages: a process whose executable is not a
// regular-file entry (a memfd, id 9) gets an external file entry named by
// the key, its mm entry points at it (the rest of the mm entry kept), a
// process whose executable is a regular file is left alone, and a second
// run changes nothing.
func TestExternalExeRewritesImages(t *testing.T) {
	dir := t.TempDir()
	writeCrit(t, filepath.Join(dir, "files.img"), "FILES",
		&fdinfo.FileEntry{Type: fdinfo.FdTypes_REG.Enum(), Id: proto.Uint32(3), Reg: &regfile.RegFileEntry{Id: proto.Uint32(3), Flags: proto.Uint32(0), Pos: proto.Uint64(0), Fown: fownZero(), Name: proto.String("/bin/sleep")}},
		&fdinfo.FileEntry{Type: fdinfo.FdTypes_MEMFD.Enum(), Id: proto.Uint32(9)})
	memfdMM := &mm.MmEntry{MmStartCode: proto.Uint64(0x400000), MmEndCode: proto.Uint64(0x500000), MmStartData: proto.Uint64(1), MmEndData: proto.Uint64(2), MmStartStack: proto.Uint64(3), MmStartBrk: proto.Uint64(4), MmBrk: proto.Uint64(5), MmArgStart: proto.Uint64(6), MmArgEnd: proto.Uint64(7), MmEnvStart: proto.Uint64(8), MmEnvEnd: proto.Uint64(9), ExeFileId: proto.Uint32(9)}
	regMM := proto.Clone(memfdMM).(*mm.MmEntry)
	regMM.ExeFileId = proto.Uint32(3)
	writeCrit(t, filepath.Join(dir, "mm-1.img"), "MM", memfdMM)
	writeCrit(t, filepath.Join(dir, "mm-2.img"), "MM", regMM)

	changed, err := ExternalExe(dir, "vessel-exe")
	if err != nil || !changed {
		t.Fatalf("ExternalExe: changed %v, %v", changed, err)
	}
	files := readCrit(t, filepath.Join(dir, "files.img"), &fdinfo.FileEntry{})
	if len(files.Entries) != 3 {
		t.Fatalf("files.img has %d entries, want 3", len(files.Entries))
	}
	ext := files.Entries[2].Message.(*fdinfo.FileEntry)
	if ext.GetType() != fdinfo.FdTypes_REG || ext.GetId() != 10 || !ext.GetReg().GetExt() || ext.GetReg().GetName() != "vessel-exe" || ext.GetReg().GetId() != 10 || ext.GetReg().GetFown() == nil {
		t.Errorf("external entry %v", ext)
	}
	m1 := readCrit(t, filepath.Join(dir, "mm-1.img"), &mm.MmEntry{}).Entries[0].Message.(*mm.MmEntry)
	want := proto.Clone(memfdMM).(*mm.MmEntry)
	want.ExeFileId = proto.Uint32(10)
	if !proto.Equal(m1, want) {
		t.Errorf("mm-1: %v, want %v", m1, want)
	}
	if m2 := readCrit(t, filepath.Join(dir, "mm-2.img"), &mm.MmEntry{}).Entries[0].Message.(*mm.MmEntry); !proto.Equal(m2, regMM) {
		t.Errorf("mm-2 changed: %v", m2)
	}
	if changed, err := ExternalExe(dir, "vessel-exe"); err != nil || changed {
		t.Errorf("second run: changed %v, %v", changed, err)
	}
}

// TestReadStats reads the dump and restore statistics vessel reports
// from stats images written by go-criu's own types.
func TestReadStats(t *testing.T) {
	dir := t.TempDir()
	writeCrit(t, filepath.Join(dir, "stats-dump"), "STATS", &stats.StatsEntry{Dump: &stats.DumpStatsEntry{
		FreezingTime: proto.Uint32(1500), FrozenTime: proto.Uint32(250000), MemdumpTime: proto.Uint32(900),
		MemwriteTime: proto.Uint32(1), PagesScanned: proto.Uint64(10), PagesSkippedParent: proto.Uint64(4096),
		PagesWritten: proto.Uint64(1 << 20), PagesLazy: proto.Uint64(0)}})
	writeCrit(t, filepath.Join(dir, "stats-restore"), "STATS", &stats.StatsEntry{Restore: &stats.RestoreStatsEntry{
		PagesCompared: proto.Uint64(0), PagesSkippedCow: proto.Uint64(0), ForkingTime: proto.Uint32(700), RestoreTime: proto.Uint32(42000)}})
	d, ok := readStats(dir, "stats-dump", statsDump)
	if !ok || d[dumpFreezingTime]+d[dumpFrozenTime] != 251500 || d[dumpMemdumpTime] != 900 || d[dumpPagesWritten] != 1<<20 || d[dumpPagesSkippedParent] != 4096 {
		t.Errorf("dump stats %v %v", d, ok)
	}
	if _, ok := readStats(dir, "stats-dump", statsRestore); ok {
		t.Error("a dump stats file read as restore stats")
	}
	r, ok := readStats(dir, "stats-restore", statsRestore)
	if !ok || r[restoreRestoreTime] != 42000 || r[restoreForkingTime] != 700 {
		t.Errorf("restore stats %v %v", r, ok)
	}
	if _, ok := readStats(dir, "missing", statsDump); ok {
		t.Error("a missing file read")
	}
}

// ShareExternalFile renames the external regular file so that CRIU's
// restore takes it from an inherited descriptor of that name, and drops
// the size and mode it would check; other files stay as they were.
func TestShareExternalFile(t *testing.T) {
	dir := t.TempDir()
	key := ExternalFile(0x2a, 0x1234)
	ext := &fdinfo.FileEntry{Type: fdinfo.FdTypes_REG.Enum(), Id: proto.Uint32(3), Reg: &regfile.RegFileEntry{
		Id: proto.Uint32(3), Flags: proto.Uint32(1), Pos: proto.Uint64(90), Fown: fownZero(), Name: proto.String(key),
		Size: proto.Uint64(90), Ext: proto.Bool(true), Mode: proto.Uint32(0o100644)}}
	plain := &fdinfo.FileEntry{Type: fdinfo.FdTypes_REG.Enum(), Id: proto.Uint32(4), Reg: &regfile.RegFileEntry{
		Id: proto.Uint32(4), Flags: proto.Uint32(0), Pos: proto.Uint64(0), Fown: fownZero(), Name: proto.String("/data/x"),
		Size: proto.Uint64(5), Mode: proto.Uint32(0o100644)}}
	writeCrit(t, filepath.Join(dir, "files.img"), "FILES", ext, plain)

	if _, err := ShareExternalFile(dir, key, "/abs"); err == nil {
		t.Fatal("a name with a leading slash was accepted")
	}
	changed, err := ShareExternalFile(dir, key, "vessel-stdio-1")
	if err != nil || !changed {
		t.Fatalf("ShareExternalFile: changed %v, %v", changed, err)
	}
	img := readCrit(t, filepath.Join(dir, "files.img"), &fdinfo.FileEntry{})
	got := img.Entries[0].Message.(*fdinfo.FileEntry).GetReg()
	if got.GetName() != "/vessel-stdio-1" || got.Size != nil || got.Mode != nil || !got.GetExt() || got.GetPos() != 90 {
		t.Fatalf("rewritten entry %v: want name /vessel-stdio-1, no size or mode, the rest kept", got)
	}
	if other := img.Entries[1].Message.(*fdinfo.FileEntry); !proto.Equal(other, plain) {
		t.Fatalf("another file changed: %v", other)
	}
	if changed, err := ShareExternalFile(dir, key, "vessel-stdio-1"); err != nil || changed {
		t.Fatalf("second rewrite: changed %v, %v; want a no-op", changed, err)
	}
}
