package checkpoint

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
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
	files, err := readImage(filesPath)
	if err != nil {
		return false, err
	}
	reg := map[uint64]bool{}
	var maxID, extID uint64
	for _, e := range files.Entries {
		id, _ := varintField(e, fileEntryID)
		maxID = max(maxID, id)
		if typ, _ := varintField(e, fileEntryType); typ != fdTypeReg {
			continue
		}
		reg[id] = true
		if r, ok := bytesField(e, fileEntryReg); ok {
			ext, _ := varintField(r, regExt)
			name, _ := bytesField(r, regName)
			if ext == 1 && string(name) == key {
				extID = id
			}
		}
	}
	mms, err := filepath.Glob(filepath.Join(dir, "mm-*.img"))
	if err != nil {
		return false, err
	}
	changed := false
	for _, p := range mms {
		img, err := readImage(p)
		if err != nil {
			return false, err
		}
		dirty := false
		for i, m := range img.Entries {
			if exe, _ := varintField(m, mmExeFileID); reg[exe] {
				continue
			}
			if extID == 0 {
				maxID++
				extID = maxID
				files.Entries = append(files.Entries, externalRegFile(extID, key))
				reg[extID] = true
			}
			img.Entries[i] = setVarintField(m, mmExeFileID, extID)
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

// ShareExternalFile rewrites the images in dir so that the external
// regular file dumped under key (see ExternalFile) is, at restore, the
// very file the restoring program hands with an InheritFD keyed name: the
// restored process shares that open file (its offset included), which
// may be a regular file, a pipe, a terminal or a socket. Left as it is,
// CRIU reopens an external file by path at restore, checks that its size
// and mode did not change and seeks it to the dumped position, which
// fails for a log file that grew, for a new empty file and for a pipe.
// name must not start with "/". It reports whether it changed anything
// (nothing when the images hold no such file or were rewritten already).
func ShareExternalFile(dir, key, name string) (bool, error) {
	if name == "" || name[0] == '/' || key == "" {
		return false, fmt.Errorf("checkpoint: ShareExternalFile: bad key %q or name %q", key, name)
	}
	filesPath := filepath.Join(dir, "files.img")
	files, err := readImage(filesPath)
	if err != nil {
		return false, err
	}
	changed := false
	for i, e := range files.Entries {
		if typ, _ := varintField(e, fileEntryType); typ != fdTypeReg {
			continue
		}
		r, ok := bytesField(e, fileEntryReg)
		if !ok {
			continue
		}
		ext, _ := varintField(r, regExt)
		n, _ := bytesField(r, regName)
		if ext != 1 || string(n) != key {
			continue
		}
		// CRIU gives a regular file whose path (the name without its
		// leading slash) is an inherited key that very descriptor,
		// before any check.
		r = setBytesField(r, regName, []byte("/"+name))
		r = dropField(dropField(r, regSize), regMode)
		files.Entries[i] = setBytesField(e, fileEntryReg, r)
		changed = true
	}
	if changed {
		if err := writeImage(filesPath, files); err != nil {
			return false, err
		}
	}
	return changed, nil
}

// Field numbers of the few CRIU image messages vessel reads or writes
// (images/fdinfo.proto, regfile.proto, fown.proto, mm.proto). They are
// handled as raw protobuf here, so that no generated image type (and
// their registration at every program start) is linked in.
const (
	fileEntryType = 1 // file_entry.type (fd_types; REG is 1)
	fileEntryID   = 2 // file_entry.id
	fileEntryReg  = 3 // file_entry.reg (reg_file_entry)
	fdTypeReg     = 1

	regID    = 1 // reg_file_entry.id
	regFlags = 2
	regPos   = 3
	regFown  = 5 // fown_entry: uid 1, euid 2, signum 3, pid_type 4, pid 5
	regName  = 6
	regSize  = 8
	regExt   = 9
	regMode  = 10

	mmExeFileID = 12 // mm_entry.exe_file_id
)

// externalRegFile is a file_entry for an external regular file named key,
// opened read-only.
func externalRegFile(id uint64, key string) []byte {
	var fown []byte
	for n := number(1); n <= 5; n++ {
		fown = appendVarintField(fown, n, 0)
	}
	var reg []byte
	reg = appendVarintField(reg, regID, id)
	reg = appendVarintField(reg, regFlags, uint64(os.O_RDONLY))
	reg = appendVarintField(reg, regPos, 0)
	reg = appendBytesField(reg, regFown, fown)
	reg = appendBytesField(reg, regName, []byte(key))
	reg = appendVarintField(reg, regExt, 1)
	var fe []byte
	fe = appendVarintField(fe, fileEntryType, fdTypeReg)
	fe = appendVarintField(fe, fileEntryID, id)
	return appendBytesField(fe, fileEntryReg, reg)
}

func appendVarintField(b []byte, num number, v uint64) []byte {
	return appendVarint(appendTag(b, num, varintType), v)
}

func appendBytesField(b []byte, num number, v []byte) []byte {
	return appendBytes(appendTag(b, num, bytesType), v)
}

// eachField calls f with every field of a message; it stops at the first
// malformed one and then returns false.
func eachField(msg []byte, f func(num number, typ wireType, val []byte, whole []byte)) bool {
	for len(msg) > 0 {
		num, typ, n := consumeTag(msg)
		if n < 0 {
			return false
		}
		m := consumeFieldValue(typ, msg[n:])
		if m < 0 {
			return false
		}
		f(num, typ, msg[n:n+m], msg[:n+m])
		msg = msg[n+m:]
	}
	return true
}

// varintField returns the last value of a varint field.
func varintField(msg []byte, num number) (v uint64, ok bool) {
	eachField(msg, func(n number, t wireType, val, _ []byte) {
		if n == num && t == varintType {
			if x, l := consumeVarint(val); l > 0 {
				v, ok = x, true
			}
		}
	})
	return v, ok
}

// bytesField returns the last value of a length-delimited field.
func bytesField(msg []byte, num number) (v []byte, ok bool) {
	eachField(msg, func(n number, t wireType, val, _ []byte) {
		if n == num && t == bytesType {
			if x, l := consumeBytes(val); l >= 0 {
				v, ok = x, true
			}
		}
	})
	return v, ok
}

// setVarintField returns msg with every occurrence of field num replaced
// by one varint field of value v.
func setVarintField(msg []byte, num number, v uint64) []byte {
	var out []byte
	eachField(msg, func(n number, _ wireType, _, whole []byte) {
		if n != num {
			out = append(out, whole...)
		}
	})
	return appendVarintField(out, num, v)
}

// setBytesField returns msg with every occurrence of field num replaced
// by one length-delimited field of value v.
func setBytesField(msg []byte, num number, v []byte) []byte {
	return appendBytesField(dropField(msg, num), num, v)
}

// dropField returns msg without field num.
func dropField(msg []byte, num number) []byte {
	var out []byte
	eachField(msg, func(n number, _ wireType, _, whole []byte) {
		if n != num {
			out = append(out, whole...)
		}
	})
	return out
}

// image is a CRIU image file of protobuf entries: its two magic words
// (kept as read) and its entries, raw. Only images without extra payload
// after each entry are handled (files, mm, stats...), which is all vessel
// edits or reads. A small codec here instead of go-criu's crit keeps
// crit's registry of every CRIU image type (and its start-up cost) out of
// every program that links vessel.
type image struct {
	magic   [8]byte
	Entries [][]byte
}

// readImage decodes the image at path.
func readImage(path string) (*image, error) {
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
		img.Entries = append(img.Entries, b[off:off+n])
		off += n
	}
	return img, nil
}

// writeImage encodes img to path through a temporary file and a rename.
func writeImage(path string, img *image) error {
	out := append([]byte(nil), img.magic[:]...)
	for _, e := range img.Entries {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(e)))
		out = append(out, e...)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("checkpoint: %w", err)
	}
	return os.Rename(tmp, path)
}
