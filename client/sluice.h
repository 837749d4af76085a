/* sluice.h: the C API of libsluice, for other languages (Python ctypes, Rust,
 * Go cgo, ...). A thin layer over the C++ client (client/sluice_client.h).
 *
 * Every function returning int returns >= 0 on success and a negative errno
 * on failure (-ENOENT, -EACCES, -EIO, -ETIMEDOUT, ...). sluice_last_error()
 * gives the message of the calling thread's last failure. Paths are absolute
 * within the file system ("/dir/file"). All functions are thread-safe; a
 * sluice_file_t may be used by several threads for pread/pwrite at once.
 */
#ifndef SLUICE_SLUICE_H_
#define SLUICE_SLUICE_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sluice_client sluice_client_t;
typedef struct sluice_file sluice_file_t;

/* What sluice_stat reports. type: 1 regular file, 2 directory, 3 symlink. */
typedef struct sluice_stat {
  uint64_t ino;
  uint32_t type;
  uint32_t mode; /* permission bits */
  uint32_t uid, gid, nlink;
  uint64_t size;
  int64_t atime_ns, mtime_ns, ctime_ns;
} sluice_stat_t;

/* Connects to a cluster. `cluster`: a config file path, "host:port" of
 * sluice-mgmtd, or NULL/"" for the local cluster (~/.sluice/local/cluster.toml).
 * `tenant`/`secret` may be NULL. On success stores the client in *out. */
int sluice_connect(const char* cluster, const char* tenant, const char* secret, sluice_client_t** out);
/* Closes the client. Files must be closed first. */
void sluice_disconnect(sluice_client_t* c);

/* Opens `path` with open(2) flags (O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL,
 * O_TRUNC, O_APPEND); `mode` applies when the file is created. */
int sluice_open(sluice_client_t* c, const char* path, int flags, uint32_t mode, sluice_file_t** out);
/* Reads up to n bytes at offset; returns the bytes read (0 at end of file). */
ssize_t sluice_pread(sluice_file_t* f, void* buf, size_t n, uint64_t offset);
/* Writes n bytes at offset; returns n. Buffered: see sluice_fsync. */
ssize_t sluice_pwrite(sluice_file_t* f, const void* buf, size_t n, uint64_t offset);
/* Reads/writes at the file offset and advance it. */
ssize_t sluice_read(sluice_file_t* f, void* buf, size_t n);
ssize_t sluice_write(sluice_file_t* f, const void* buf, size_t n);
/* Makes the writes durable on every replica and publishes the length. */
int sluice_fsync(sluice_file_t* f);
/* Sets the length of an open file. */
int sluice_ftruncate(sluice_file_t* f, uint64_t size);
/* Fsync, then frees the file (also on error). */
int sluice_close(sluice_file_t* f);

/* Attributes of a path (symlinks are not followed in the last component). */
int sluice_stat(sluice_client_t* c, const char* path, sluice_stat_t* st);
int sluice_mkdir(sluice_client_t* c, const char* path, uint32_t mode);
int sluice_unlink(sluice_client_t* c, const char* path);
int sluice_rmdir(sluice_client_t* c, const char* path);
int sluice_rename(sluice_client_t* c, const char* from, const char* to);
/* Calls fn(name, type, arg) for every entry of a directory (no "." / "..");
 * stops early when fn returns non-zero. Returns the number of entries seen. */
int sluice_readdir(sluice_client_t* c, const char* path,
                   int (*fn)(const char* name, uint32_t type, void* arg), void* arg);

/* Registers memory that reads land in without a copy (RDMA); it must stay
 * valid until sluice_disconnect. */
int sluice_register_buffer(sluice_client_t* c, void* addr, size_t len);

/* One range of sluice_batch_read; `result` receives the bytes read or -errno. */
typedef struct sluice_read_item {
  sluice_file_t* file;
  uint64_t offset;
  size_t length;
  void* dest;
  ssize_t result;
} sluice_read_item_t;
/* Reads all items at once, across data servers; returns 0 when the batch ran
 * (check each item's result) or -errno if it could not run. */
int sluice_batch_read(sluice_client_t* c, sluice_read_item_t* items, size_t n);

/* The message of this thread's last failed call ("" if none). */
const char* sluice_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* SLUICE_SLUICE_H_ */
