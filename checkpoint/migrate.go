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
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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

// RoundOptions are a round's extras for a RoundSource.
type RoundOptions struct {
	// Pages, when set, is the socket the round's memory pages go through
	// (Options.PageServer), to the receiver's CRIU page server, instead
	// of the images directory.
	Pages *os.File
	// Handoff, for the final round, is as in HandoffSource.FinalDump.
	Handoff func() error
}

// RoundSource is a HandoffSource that can send its memory pages to a
// CRIU page server: Migrate then sends every round's pages through the
// receiver's page server on the migration connection itself (CRIU's
// --ps-socket), and the rest of the images as a tar stream.
type RoundSource interface {
	HandoffSource
	// Round is DumpRound (or, with ro.Handoff, FinalDump) with ro's
	// extras.
	Round(ctx context.Context, dir, parent string, final bool, ro RoundOptions) (*Stats, error)
	// MemoryTracking reports whether pre-dump rounds can run (see the
	// package's MemoryTracking), asked before a page server is set up for
	// one.
	MemoryTracking(ctx context.Context) bool
}

// RestoreFunc brings back, on the receiving side, the tree whose final
// images are in dir (pre-dump images it refers to are beside it).
type RestoreFunc func(ctx context.Context, dir string) error

// MigrateOptions configures Migrate.
type MigrateOptions struct {
	// PreDumps is the number of pre-dump rounds streamed while the source
	// runs, before the final dump.
	PreDumps int
	// NoPageServer sends the memory pages in the tar stream too, even
	// when both ends could use CRIU's page server.
	NoPageServer bool
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
	// BytesSent is what went over the connection, all rounds, memory
	// pages sent to the receiver's page server included.
	BytesSent int64 `json:"bytesSent"`
	// PageServerRounds counts the rounds whose memory went through the
	// receiver's CRIU page server; PageBytes is that memory's size.
	PageServerRounds int   `json:"pageServerRounds,omitempty"`
	PageBytes        int64 `json:"pageBytes,omitempty"`
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
	Type string `json:"type"` // "pages", "round", "final", "restored"
	Name string `json:"name,omitempty"`
	// Parent (pages) names the previous round.
	Parent string `json:"parent,omitempty"`
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
	// Memory pages go through the receiver's CRIU page server, on this
	// connection, when the source can send them there and the receiver
	// takes them; the rest of the images (and all of them otherwise) as
	// a tar stream.
	rsrc, _ := src.(RoundSource)
	var pages *pageSocket
	if rsrc != nil && !opts.NoPageServer {
		if pages = newPageSocket(conn); pages != nil {
			defer pages.close()
		}
	}
	// askPages asks the receiver to take round name's pages; false when
	// it cannot (every later round then goes as a tar).
	askPages := func(name, parent string) (bool, error) {
		if pages == nil {
			return false, nil
		}
		h := header{Type: "pages", Name: name}
		if parent != "" {
			h.Parent = filepath.Base(parent)
		}
		if err := writeHeader(cw, h); err != nil {
			return false, fmt.Errorf("checkpoint: ask the receiver for a page server: %w", err)
		}
		var reply header
		if err := readHeader(br, &reply); err != nil {
			return false, fmt.Errorf("checkpoint: ask the receiver for a page server: %w", err)
		}
		if reply.Type != "pages" || reply.Error != "" {
			pages.close()
			pages = nil
			return false, nil
		}
		return true, nil
	}
	// pagesSent accounts for a round's pages that went to the page server.
	pagesSent := func(rs *Stats) {
		st.PageServerRounds++
		n := int64(rs.PagesWritten) * int64(os.Getpagesize())
		st.PageBytes += n
		cw.n += n
	}
	parent := ""
	for i := 1; i <= opts.PreDumps; i++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("checkpoint: migration cancelled before pre-dump %d (the source keeps running): %w", i, err)
		}
		name := "pre-" + strconv.Itoa(i)
		dir := filepath.Join(work, name)
		var rs *Stats
		var err error
		if pages != nil && !rsrc.MemoryTracking(ctx) {
			// Decided before asking for a page server, which would wait
			// for pages that never come.
			err = ErrNoMemoryTracking
		} else if ok, aerr := askPages(name, parent); aerr != nil {
			return nil, aerr
		} else if ok {
			rs, err = rsrc.Round(ctx, dir, parent, false, RoundOptions{Pages: pages.file})
			pages.reset()
			if err == nil {
				pagesSent(rs)
			} else if errors.Is(err, ErrNoMemoryTracking) {
				err = fmt.Errorf("checkpoint: pre-dump %d: %v", i, err) // not a skip: the receiver waits for pages
			}
		} else {
			rs, err = src.DumpRound(ctx, dir, parent, false)
		}
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
	usePages, err := askPages("final", parent)
	if err != nil {
		return nil, err
	}
	if usePages {
		// The pages reach the receiver before CRIU's post-dump
		// notification, which runs handoff.
		rs, err = rsrc.Round(ctx, dir, parent, true, RoundOptions{Pages: pages.file, Handoff: func() error {
			pages.reset()
			return handoff()
		}})
		pages.reset()
		if err != nil {
			return nil, fmt.Errorf("checkpoint: migration failed: %w", err)
		}
		pagesSent(rs)
	} else if hs, ok := src.(HandoffSource); ok {
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
	// PageBytes is the part of BytesReceived that came through CRIU's
	// page server: memory pages.
	PageBytes int64 `json:"pageBytes,omitempty"`
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
	// Rounds whose pages came through the page server: their directory
	// holds them already when the rest arrives.
	served := map[string]bool{}
	for {
		var h header
		if err := readHeader(br, &h); err != nil {
			return nil, fmt.Errorf("checkpoint: receive: %w", err)
		}
		if h.Type != "round" && h.Type != "final" && h.Type != "pages" {
			return nil, fmt.Errorf("checkpoint: receive: unexpected message %q", h.Type)
		}
		if !goodRoundName(h.Name) || h.Parent != "" && !goodRoundName(h.Parent) {
			return nil, fmt.Errorf("checkpoint: receive: bad round name %q (parent %q)", h.Name, h.Parent)
		}
		target := filepath.Join(dir, h.Name)
		if h.Type == "pages" {
			n, err := receivePages(ctx, conn, br, target, h.Parent)
			if err != nil {
				return nil, fmt.Errorf("checkpoint: receive the pages of %s: %w", h.Name, err)
			}
			if n >= 0 {
				cr.n += n
				st.PageBytes += n
				served[h.Name] = true
			}
			continue
		}
		if !served[h.Name] {
			if err := os.RemoveAll(target); err != nil {
				return nil, err
			}
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

func goodRoundName(n string) bool {
	return n != "" && !strings.ContainsAny(n, "/\\") && n != "." && n != ".."
}

// receivePages answers a sender's request for a page server: it serves
// the round's pages into target (with a "parent" link to the previous
// round's directory) through CRIU's page server on conn, and returns
// their size, or -1 when it declined (the sender then sends the pages in
// the tar stream).
func receivePages(ctx context.Context, conn io.ReadWriter, br *bufio.Reader, target, parent string) (int64, error) {
	decline := func(why string) (int64, error) {
		if err := writeHeader(conn, header{Type: "pages", Error: why}); err != nil {
			return 0, err
		}
		return -1, nil
	}
	if br.Buffered() > 0 {
		// The page transfer must start right after the request: a
		// sender that wrote more is not waiting for the answer.
		return 0, errors.New("data after the request")
	}
	ps := newPageSocket(conn)
	if ps == nil {
		return decline("the connection is not a socket")
	}
	defer ps.close()
	if _, err := CriuVersion(ctx, ""); err != nil {
		return decline(err.Error())
	}
	if err := os.RemoveAll(target); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return 0, err
	}
	if parent != "" {
		if err := os.Symlink(filepath.Join("..", parent), filepath.Join(target, "parent")); err != nil {
			return 0, err
		}
	}
	if err := writeHeader(conn, header{Type: "pages"}); err != nil {
		return 0, err
	}
	err := ServePages(ctx, ps.file, &Options{ImagesDir: target})
	ps.reset()
	if err != nil {
		return 0, err
	}
	var n int64
	ents, _ := os.ReadDir(target)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "pages-") {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
	}
	return n, nil
}

// pageSocket is a migration connection's socket as a file criu can be
// given (CRIU's --ps-socket).
type pageSocket struct {
	file *os.File
	raw  syscall.RawConn
}

// newPageSocket returns conn's socket, or nil when conn is not a socket
// with a descriptor (net.TCPConn, net.UnixConn).
func newPageSocket(conn io.ReadWriter) *pageSocket {
	fc, ok := conn.(interface {
		File() (*os.File, error)
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return nil
	}
	raw, err := fc.SyscallConn()
	if err != nil {
		return nil
	}
	f, err := fc.File()
	if err != nil {
		return nil
	}
	return &pageSocket{file: f, raw: raw}
}

// reset makes the connection non-blocking again, as Go's network
// poller wants it, after criu (which is given it blocking) is done, and
// uncorked (CRIU corks it: what follows would wait for the cork's 200
// ms).
func (p *pageSocket) reset() {
	_ = p.raw.Control(func(fd uintptr) {
		_ = unix.SetNonblock(int(fd), true)
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, 0)
	})
}

func (p *pageSocket) close() {
	if p != nil && p.file != nil {
		p.file.Close()
		p.file = nil
	}
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
				// The "parent" link of a round whose pages came first.
				if cur, rerr := os.Readlink(p); rerr != nil || cur != hdr.Linkname {
					return err
				}
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
