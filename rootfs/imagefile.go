package rootfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// ImageFileFS finds the filesystem of a single-file image by its magic
// number: squashfs (at offset 0) or erofs (at offset 1024).
func ImageFileFS(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	var buf [1028]byte
	n, err := io.ReadFull(f, buf[:])
	if err != nil && err != io.ErrUnexpectedEOF {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if n >= 4 && binary.LittleEndian.Uint32(buf[0:4]) == 0x73717368 {
		return "squashfs", nil
	}
	if n >= 1028 && binary.LittleEndian.Uint32(buf[1024:1028]) == 0xe0f5e1e2 {
		return "erofs", nil
	}
	return "", fmt.Errorf("%s is neither a squashfs nor an erofs image (no magic number)", path)
}
