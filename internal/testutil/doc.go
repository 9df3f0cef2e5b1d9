// Package testutil holds what vessel's tests share: building the static
// probe program (BuildProbe), a busybox root filesystem (BusyboxRootfs,
// with the probe and NopELF's program that only exits),
// decoding and asserting on the probe's JSON output (ParseReport, ParseTry,
// AssertDenied), a snapshot of host state for leak tests (SnapshotHost,
// AssertUnchanged) and RequireRoot.
//
// Builds are shared by all tests of one test binary and live in one
// directory under os.TempDir(). A test binary that uses BuildProbe or
// BusyboxRootfs should remove it at exit with
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
//
// (or call Cleanup itself after m.Run): a t.Cleanup cannot own something
// shared by several tests, and Go has no process exit hook.
//
// Environment overrides, for running a compiled test binary where there is
// no Go toolchain (e.g. inside a qemu initramfs): VESSEL_PROBE names a
// prebuilt probe binary, VESSEL_BUSYBOX a static busybox (default
// /bin/busybox).
//
// This package is imported only from _test.go files. It never imports the
// root vessel package, and it changes nothing on the host except the shared
// temporary directory and what a caller asks for (a marker file).
package testutil
