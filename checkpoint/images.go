package checkpoint

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fown"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
)

// ExternalExe rewrites the images in dir so that every process whose
// executable is not a regular-file entry of the images (a process started
// from a memfd, as a sealed copy of a binary is) takes its executable link
// (/proc/PID/exe) from an external file named key at restore: Restore
// must then hand a regular, executable file with an InheritFD keyed key.
//
// CRIU (4.1 and the development branch as of late 2025) dumps a memfd
// that is both mapped and the executable once, as a memfd, but looks the
// executable up among regular files at restore, and fails with "No entry
// for reg-file-ID". The memfd's contents and mappings are kept: only the
// exe link changes. It reports whether it changed anything, and is a
// no-op on images it already fixed.
func ExternalExe(dir, key string) (bool, error) {
	filesPath := filepath.Join(dir, "files.img")
	files, err := readImage(filesPath, &fdinfo.FileEntry{})
	if err != nil {
		return false, err
	}
	reg := map[uint32]bool{}
	var maxID uint32
	extID := uint32(0)
	for _, e := range files.Entries {
		fe, ok := e.Message.(*fdinfo.FileEntry)
		if !ok {
			continue
		}
		if fe.GetId() > maxID {
			maxID = fe.GetId()
		}
		if fe.GetType() == fdinfo.FdTypes_REG {
			reg[fe.GetId()] = true
			if fe.GetReg().GetExt() && fe.GetReg().GetName() == key {
				extID = fe.GetId()
			}
		}
	}
	mms, err := filepath.Glob(filepath.Join(dir, "mm-*.img"))
	if err != nil {
		return false, err
	}
	changed := false
	for _, p := range mms {
		img, err := readImage(p, &mm.MmEntry{})
		if err != nil {
			return false, err
		}
		dirty := false
		for _, e := range img.Entries {
			m, ok := e.Message.(*mm.MmEntry)
			if !ok || reg[m.GetExeFileId()] {
				continue
			}
			if extID == 0 {
				maxID++
				extID = maxID
				files.Entries = append(files.Entries, &imageEntry{Message: &fdinfo.FileEntry{
					Type: fdinfo.FdTypes_REG.Enum(),
					Id:   proto.Uint32(extID),
					Reg: &regfile.RegFileEntry{
						Id:    proto.Uint32(extID),
						Flags: proto.Uint32(uint32(os.O_RDONLY)),
						Pos:   proto.Uint64(0),
						Fown:  &fown.FownEntry{Uid: proto.Uint32(0), Euid: proto.Uint32(0), Signum: proto.Uint32(0), PidType: proto.Uint32(0), Pid: proto.Uint32(0)},
						Name:  proto.String(key),
						Ext:   proto.Bool(true),
					},
				}})
				reg[extID] = true
			}
			m.ExeFileId = proto.Uint32(extID)
			dirty = true
		}
		if dirty {
			if err := writeImage(p, img); err != nil {
				return false, err
			}
			changed = true
		}
	}
	if changed {
		if err := writeImage(filesPath, files); err != nil {
			return false, err
		}
	}
	return changed, nil
}

// image is a CRIU image file of protobuf entries: its two magic words
// (kept as read) and its entries. Only images without extra payload after
// each entry are handled (files, mm, stats...); that is all vessel edits
// or reads. A small codec here instead of go-criu's crit keeps crit's
// registry of every CRIU image type (and its start-up cost) out of every
// program that links vessel.
type image struct {
	magic   [8]byte
	Entries []*imageEntry
}

type imageEntry struct{ Message proto.Message }

// readImage decodes the image at path, each entry into a new message of
// typ's type.
func readImage(path string, typ proto.Message) (*image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	bad := func(why string) (*image, error) {
		return nil, fmt.Errorf("checkpoint: decode %s: %s", path, why)
	}
	if len(b) < 8 {
		return bad("shorter than its magic")
	}
	img := &image{}
	copy(img.magic[:], b)
	for off := 8; off < len(b); {
		if len(b)-off < 4 {
			return bad("truncated entry size")
		}
		n := int(binary.LittleEndian.Uint32(b[off:]))
		off += 4
		if n > len(b)-off {
			return bad("truncated entry")
		}
		m := typ.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b[off:off+n], m); err != nil {
			return bad(err.Error())
		}
		img.Entries = append(img.Entries, &imageEntry{Message: m})
		off += n
	}
	return img, nil
}

// writeImage encodes img to path through a temporary file and a rename.
func writeImage(path string, img *image) error {
	out := append([]byte(nil), img.magic[:]...)
	for _, e := range img.Entries {
		data, err := proto.Marshal(e.Message)
		if err != nil {
			return fmt.Errorf("checkpoint: encode %s: %w", path, err)
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(data)))
		out = append(out, data...)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("checkpoint: %w", err)
	}
	return os.Rename(tmp, path)
}
