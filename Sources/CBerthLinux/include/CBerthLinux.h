#ifndef C_BERTH_LINUX_H
#define C_BERTH_LINUX_H

#include <stdint.h>

/// Asks the kernel to start writing a file range back to disk without waiting for it
/// (Linux `sync_file_range(2)` with `SYNC_FILE_RANGE_WRITE`), so a later `fsync(2)` finds little left to do.
/// Returns 0, or -1 with `errno` set. Elsewhere than Linux it does nothing and returns 0.
int berth_start_writeback(int fd, int64_t offset, int64_t length);

#endif
