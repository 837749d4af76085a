// The C API (client/sluice.h) over the C++ client.
#include <cerrno>
#include <string>

#include "client/sluice.h"
#include "client/sluice_client.h"

using sluice::Result;
using sluice::Status;
using sluice::client::Client;
using sluice::client::File;

struct sluice_client {
  std::unique_ptr<Client> c;
};
struct sluice_file {
  std::unique_ptr<File> f;
};

namespace {

thread_local std::string t_last_error;

int Fail(const Status& s) {
  t_last_error = s.ToString();
  return -s.to_errno();
}

void Fill(const sluice::client::InodeAttr& a, sluice_stat_t* st) {
  st->ino = a.ino();
  st->type = static_cast<uint32_t>(a.type());
  st->mode = a.mode();
  st->uid = a.uid();
  st->gid = a.gid();
  st->nlink = a.nlink();
  st->size = a.size();
  st->atime_ns = a.atime_ns();
  st->mtime_ns = a.mtime_ns();
  st->ctime_ns = a.ctime_ns();
}

}  // namespace

extern "C" {

int sluice_connect(const char* cluster, const char* tenant, const char* secret, sluice_client_t** out) {
  if (!out) return -EINVAL;
  sluice::client::ClientOptions o;
  if (cluster) o.cluster = cluster;
  if (tenant) o.tenant = tenant;
  if (secret) o.secret = secret;
  auto r = Client::Connect(o);
  if (!r.ok()) return Fail(r.status());
  *out = new sluice_client{std::move(r.value())};
  return 0;
}

void sluice_disconnect(sluice_client_t* c) { delete c; }

int sluice_open(sluice_client_t* c, const char* path, int flags, uint32_t mode, sluice_file_t** out) {
  if (!c || !path || !out) return -EINVAL;
  auto r = c->c->Open(path, flags, mode);
  if (!r.ok()) return Fail(r.status());
  *out = new sluice_file{std::move(r.value())};
  return 0;
}

ssize_t sluice_pread(sluice_file_t* f, void* buf, size_t n, uint64_t offset) {
  if (!f) return -EBADF;
  auto r = f->f->Pread(buf, n, offset);
  return r.ok() ? static_cast<ssize_t>(*r) : Fail(r.status());
}

ssize_t sluice_pwrite(sluice_file_t* f, const void* buf, size_t n, uint64_t offset) {
  if (!f) return -EBADF;
  auto r = f->f->Pwrite(buf, n, offset);
  return r.ok() ? static_cast<ssize_t>(*r) : Fail(r.status());
}

ssize_t sluice_read(sluice_file_t* f, void* buf, size_t n) {
  if (!f) return -EBADF;
  auto r = f->f->Read(buf, n);
  return r.ok() ? static_cast<ssize_t>(*r) : Fail(r.status());
}

ssize_t sluice_write(sluice_file_t* f, const void* buf, size_t n) {
  if (!f) return -EBADF;
  auto r = f->f->Write(buf, n);
  return r.ok() ? static_cast<ssize_t>(*r) : Fail(r.status());
}

int sluice_fsync(sluice_file_t* f) {
  if (!f) return -EBADF;
  Status s = f->f->Fsync();
  return s.ok() ? 0 : Fail(s);
}

int sluice_ftruncate(sluice_file_t* f, uint64_t size) {
  if (!f) return -EBADF;
  Status s = f->f->Truncate(size);
  return s.ok() ? 0 : Fail(s);
}

int sluice_close(sluice_file_t* f) {
  if (!f) return -EBADF;
  Status s = f->f->Close();
  delete f;
  return s.ok() ? 0 : Fail(s);
}

int sluice_stat(sluice_client_t* c, const char* path, sluice_stat_t* st) {
  if (!c || !path || !st) return -EINVAL;
  auto r = c->c->Stat(path);
  if (!r.ok()) return Fail(r.status());
  Fill(*r, st);
  return 0;
}

int sluice_mkdir(sluice_client_t* c, const char* path, uint32_t mode) {
  if (!c || !path) return -EINVAL;
  auto r = c->c->Mkdir(path, mode);
  return r.ok() ? 0 : Fail(r.status());
}

int sluice_unlink(sluice_client_t* c, const char* path) {
  if (!c || !path) return -EINVAL;
  Status s = c->c->Unlink(path);
  return s.ok() ? 0 : Fail(s);
}

int sluice_rmdir(sluice_client_t* c, const char* path) {
  if (!c || !path) return -EINVAL;
  Status s = c->c->Rmdir(path);
  return s.ok() ? 0 : Fail(s);
}

int sluice_rename(sluice_client_t* c, const char* from, const char* to) {
  if (!c || !from || !to) return -EINVAL;
  Status s = c->c->Rename(from, to);
  return s.ok() ? 0 : Fail(s);
}

int sluice_readdir(sluice_client_t* c, const char* path, int (*fn)(const char*, uint32_t, void*), void* arg) {
  if (!c || !path || !fn) return -EINVAL;
  auto r = c->c->ListDir(path);
  if (!r.ok()) return Fail(r.status());
  int n = 0;
  for (auto& e : *r) {
    ++n;
    if (fn(e.name().c_str(), static_cast<uint32_t>(e.type()), arg) != 0) break;
  }
  return n;
}

int sluice_register_buffer(sluice_client_t* c, void* addr, size_t len) {
  if (!c) return -EINVAL;
  Status s = c->c->RegisterBuffer(addr, len);
  return s.ok() ? 0 : Fail(s);
}

int sluice_batch_read(sluice_client_t* c, sluice_read_item_t* items, size_t n) {
  if (!c || (!items && n)) return -EINVAL;
  std::vector<sluice::client::BatchReadItem> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i].file = items[i].file ? items[i].file->f.get() : nullptr;
    v[i].offset = items[i].offset;
    v[i].length = items[i].length;
    v[i].dest = items[i].dest;
  }
  Status s = c->c->BatchRead(v);
  if (!s.ok()) return Fail(s);
  for (size_t i = 0; i < n; ++i) {
    items[i].result = v[i].status.ok() ? static_cast<ssize_t>(v[i].bytes) : -v[i].status.to_errno();
  }
  return 0;
}

const char* sluice_last_error(void) { return t_last_error.c_str(); }

}  // extern "C"
