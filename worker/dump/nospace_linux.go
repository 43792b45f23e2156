package dump

import "golang.org/x/sys/unix"

// freeBytes is the space an unprivileged writer has left in dir's file system, -1 if
// it cannot be read.
func freeBytes(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}
