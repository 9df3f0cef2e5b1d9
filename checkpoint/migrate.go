package checkpoint

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Source is what Migrate moves: something that dumps itself in rounds.
type Source interface {
	// DumpRound writes one round into dir: a pre-dump (final false; the
	// source keeps running) or the final dump (the source stops). parent
	// is the previous round's directory, "" for none. A pre-dump may fail
	// with ErrNoMemoryTracking; Migrate then goes straight to the final
	// dump.
	DumpRound(ctx context.Context, dir, parent string, final bool) (*Stats, error)
}

// HandoffSource is a Source whose final dump can hand its images over
// while it is still frozen (see Options.Handoff): Migrate then sends the
// final images and waits for the receiver's restore inside handoff, so
// that a failed restore resumes the source instead of leaving nothing
// running.
type HandoffSource interface {
	Source
	// FinalDump is DumpRound's final dump, calling handoff once the images
	// are complete and the source still frozen. When handoff fails the
	// source resumes and FinalDump returns a *HandoffError.
	FinalDump(ctx context.Context, dir, parent string, handoff func() error) (*Stats, error)
}

// RestoreFunc brings back, on the receiving side, the tree whose final
// images are in dir (pre-dump images it refers to are beside it).
type RestoreFunc func(ctx context.Context, dir string) error

// MigrateOptions configures Migrate.
type MigrateOptions struct {
	// PreDumps is the number of pre-dump rounds streamed while the source
	// runs, before the final dump.
	PreDumps int
	// WorkDir holds the images on the sending side; empty: a temporary
	// directory, removed when Migrate returns (for a Source that is not a
	// HandoffSource it is kept, and named in the error, when the receiver
	// failed to restore, so the source can be restored where it was).
	WorkDir string
}

// MigrationStats describes a finished migration.
type MigrationStats struct {
	// Rounds are the sender's dump rounds, pre-dumps first.
	Rounds []Stats `json:"rounds"`
	// PreDumpsSkipped: pre-dumps were asked for but the kernel cannot
	// track dirty memory.
	PreDumpsSkipped bool `json:"preDumpsSkipped,omitempty"`
	// BytesSent is what went over the connection, all rounds.
	BytesSent int64 `json:"bytesSent"`
	// FinalBytes is the part of BytesSent sent while the source was down.
	FinalBytes int64 `json:"finalBytes"`
	// FreezeTime is how long the final dump kept the source frozen.
	FreezeTime time.Duration `json:"freezeTime"`
	// Downtime runs from the start of the final dump to the receiver's
	// report that the tree runs again: the time the service was away.
	Downtime time.Duration `json:"downtime"`
	// RestoreTime is the receiver's restore, as it reports it.
	RestoreTime time.Duration `json:"restoreTime"`
	// Total is the whole migration.
	Total time.Duration `json:"total"`
}

// header precedes each message on the connection: one JSON line.
type header struct {
	Type string `json:"type"` // "round", "final", "restored"
	Name string `json:"name,omitempty"`
	// Restored reply.
	Error       string        `json:"error,omitempty"`
	RestoreTime time.Duration `json:"restoreTime,omitempty"`
}

// Migrate moves src to the receiver at the other end of conn (see
// Receive): opts.PreDumps rounds of pre-dump while src runs, each
// streamed as soon as it is written, then the final dump, streamed while
// src is stopped, then it waits for the receiver to report the restore.
// With a HandoffSource the migration is all or nothing: src stays frozen
// (its network locked) until the receiver reports, and resumes when the
// receiver failed; the error then says so.
func Migrate(ctx context.Context, conn io.ReadWriter, src Source, opts *MigrateOptions) (*MigrationStats, error) {
	if opts == nil {
		opts = &MigrateOptions{}
	}
	if opts.PreDumps < 0 || opts.PreDumps > 64 {
		return nil, fmt.Errorf("checkpoint: MigrateOptions.PreDumps: %d is outside 0..64", opts.PreDumps)
	}
	start := time.Now()
	work := opts.WorkDir
	temp := false
	if work == "" {
		d, err := MkdirTemp("vessel-migrate-")
		if err != nil {
			return nil, err
		}
		work, temp = d, true
	}
	keep := false
	defer func() {
		if temp && !keep {
			os.RemoveAll(work)
		}
	}()
	if ctx.Done() != nil {
		if c, ok := conn.(net.Conn); ok {
			stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
			defer stop()
		}
	}
	cw := &countingWriter{w: conn}
	br := bufio.NewReader(conn)
	st := &MigrationStats{}
	parent := ""
	for i := 1; i <= opts.PreDumps; i++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("checkpoint: migration cancelled before pre-dump %d (the source keeps running): %w", i, err)
		}
		name := "pre-" + strconv.Itoa(i)
		dir := filepath.Join(work, name)
		rs, err := src.DumpRound(ctx, dir, parent, false)
		if errors.Is(err, ErrNoMemoryTracking) {
			st.PreDumpsSkipped = true
			break
		}
		if err != nil {
			return nil, err
		}
		st.Rounds = append(st.Rounds, *rs)
		if err := sendDir(cw, header{Type: "round", Name: name}, dir); err != nil {
			return nil, fmt.Errorf("checkpoint: send %s: %w", name, err)
		}
		parent = dir
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("checkpoint: migration cancelled before the final dump (the source keeps running): %w", err)
	}
	finalStart := time.Now()
	dir := filepath.Join(work, "final")
	var reply header
	var before int64
	// handoff sends the final images and waits for the receiver's answer.
	handoff := func() error {
		before = cw.n
		if err := sendDir(cw, header{Type: "final", Name: "final"}, dir); err != nil {
			return fmt.Errorf("send final images: %w", err)
		}
		if err := readHeader(br, &reply); err != nil {
			return fmt.Errorf("waiting for the receiver: %w", err)
		}
		st.Downtime = time.Since(finalStart)
		if reply.Type != "restored" || reply.Error != "" {
			return fmt.Errorf("the receiver failed to restore: %s", reply.Error)
		}
		return nil
	}
	var rs *Stats
	var err error
	if hs, ok := src.(HandoffSource); ok {
		rs, err = hs.FinalDump(ctx, dir, parent, handoff)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: migration failed: %w", err)
		}
	} else {
		// A plain Source is gone once its final dump returns: a failed
		// restore leaves only the images, kept for a restore by hand.
		rs, err = src.DumpRound(ctx, dir, parent, true)
		if err != nil {
			return nil, err
		}
		if err := handoff(); err != nil {
			keep = true
			if temp {
				// Out of MkdirTemp's sweep of dead programs' directories.
				kept := filepath.Join(filepath.Dir(work), "vessel-migrate-kept-"+filepath.Base(work))
				if os.Rename(work, kept) == nil {
					dir = filepath.Join(kept, "final")
				}
			}
			return nil, fmt.Errorf("checkpoint: %w (the images are kept in %s)", err, dir)
		}
	}
	st.Rounds = append(st.Rounds, *rs)
	st.FreezeTime = rs.FreezeTime
	st.FinalBytes = cw.n - before
	st.BytesSent = cw.n
	st.RestoreTime = reply.RestoreTime
	st.Total = time.Since(start)
	return st, nil
}

// MigrateTo dials addr over TCP and migrates src there.
func MigrateTo(ctx context.Context, addr string, src Source, opts *MigrateOptions) (*MigrationStats, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer conn.Close()
	return Migrate(ctx, conn, src, opts)
}

// ReceiveStats describes a received migration.
type ReceiveStats struct {
	// Rounds is the number of image sets received, the final one included.
	Rounds int `json:"rounds"`
	// BytesReceived is what came over the connection.
	BytesReceived int64 `json:"bytesReceived"`
	// RestoreTime is how long restore took.
	RestoreTime time.Duration `json:"restoreTime"`
	// Dir holds the final images.
	Dir string `json:"dir"`
}

// Receive is the other end of Migrate: it stores the rounds that arrive
// on conn under dir (dir/pre-1, ..., dir/final), calls restore on the
// final images and reports the result to the sender.
func Receive(ctx context.Context, conn io.ReadWriter, dir string, restore RestoreFunc) (*ReceiveStats, error) {
	if dir == "" {
		return nil, errors.New("checkpoint: Receive: empty directory")
	}
	if restore == nil {
		return nil, errors.New("checkpoint: Receive: nil restore function")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if ctx.Done() != nil {
		if c, ok := conn.(net.Conn); ok {
			stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
			defer stop()
		}
	}
	cr := &countingReader{r: conn}
	br := bufio.NewReader(cr)
	st := &ReceiveStats{}
	for {
		var h header
		if err := readHeader(br, &h); err != nil {
			return nil, fmt.Errorf("checkpoint: receive: %w", err)
		}
		if h.Type != "round" && h.Type != "final" {
			return nil, fmt.Errorf("checkpoint: receive: unexpected message %q", h.Type)
		}
		if h.Name == "" || strings.ContainsAny(h.Name, "/\\") || h.Name == "." || h.Name == ".." {
			return nil, fmt.Errorf("checkpoint: receive: bad round name %q", h.Name)
		}
		target := filepath.Join(dir, h.Name)
		if err := os.RemoveAll(target); err != nil {
			return nil, err
		}
		if err := untar(br, target); err != nil {
			return nil, fmt.Errorf("checkpoint: receive %s: %w", h.Name, err)
		}
		st.Rounds++
		if h.Type == "final" {
			st.Dir = target
			break
		}
	}
	start := time.Now()
	rerr := restore(ctx, st.Dir)
	st.RestoreTime = time.Since(start)
	st.BytesReceived = cr.n
	reply := header{Type: "restored", RestoreTime: st.RestoreTime}
	if rerr != nil {
		reply.Error = rerr.Error()
	}
	werr := writeHeader(conn, reply)
	if rerr != nil {
		return st, rerr
	}
	if werr != nil {
		return st, fmt.Errorf("checkpoint: restored, but could not tell the sender: %w", werr)
	}
	return st, nil
}

// ReceiveOn accepts one migration on l and receives it (see Receive).
func ReceiveOn(ctx context.Context, l net.Listener, dir string, restore RestoreFunc) (*ReceiveStats, error) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	conn, err := l.Accept()
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("checkpoint: accept: %w", err)
	}
	defer conn.Close()
	return Receive(ctx, conn, dir, restore)
}

func writeHeader(w io.Writer, h header) error {
	data, err := json.Marshal(h)
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

func readHeader(r *bufio.Reader, h *header) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if len(line) > 1<<16 {
		return errors.New("header too long")
	}
	return json.Unmarshal(line, h)
}

// sendDir writes the header, then dir as a tar stream (regular files,
// directories and symlinks; CRIU's logs are left out).
func sendDir(w io.Writer, h header, dir string) error {
	if err := writeHeader(w, h); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	tw := tar.NewWriter(bw)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		if strings.HasSuffix(rel, ".log") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		} else if !info.Mode().IsRegular() && !info.IsDir() {
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// untar reads one tar stream into the new directory target.
func untar(r io.Reader, target string) error {
	if err := os.MkdirAll(target, 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(hdr.Name))
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
			return fmt.Errorf("bad path %q in stream", hdr.Name)
		}
		p := filepath.Join(target, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, p); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected entry %q of type %c", hdr.Name, hdr.Typeflag)
		}
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
