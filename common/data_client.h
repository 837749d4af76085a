// DataClient: the client side of sluice-data, for libsluice, tools and tests.
//
// It knows the cluster map (MapClient, refreshed on kStaleMap/kUnavailable),
// sends each update to its chain's head (members[0]) and reads from any
// SERVING replica. Reads are batched per target, issued in parallel, complete
// out of order, and land by RMA straight in the caller's buffers when those
// are registered (RegisterMemory) and one batch's buffers are contiguous;
// otherwise through one bounce buffer per batch. Every read is checked end to
// end: the CRC32C the server computed over the bytes it sent is compared with
// the bytes that arrived, and a mismatch is kCorrupt (EIO to users) naming target
// and chunk — never silently returned bytes. A replica that fails a read
// (kCorrupt, kUnavailable, kIo, ...) is skipped for another one.
//
// Thread-safe: any number of threads may call at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/mgmt_client.h"
#include "common/rpc.h"
#include "common/status.h"
#include "proto/data.pb.h"
#include "proto/mgmt.pb.h"

namespace sluice {

struct DataClientOptions {
  std::string provider = "tcp";
  std::string mgmtd_host = "127.0.0.1";
  uint16_t mgmtd_port = 7000;
  rpc::Credential credential;
  // Budget of one RPC.
  uint32_t call_timeout_ms = 10000;
  // How long an operation keeps retrying retryable failures (kUnavailable,
  // kStaleMap, kTimeout, kBusy) with a map refresh and backoff.
  uint32_t retry_budget_ms = 30000;
  // Per BatchRead RPC: at most this many bytes and ranges.
  size_t max_batch_bytes = 32u << 20;
  size_t max_batch_ranges = 1024;
};

// One range of a multi-range chunk write.
struct ChunkExtent {
  uint32_t offset = 0;  // within the chunk
  uint32_t length = 0;
};

// A write of `length` bytes at `offset` of chunk (inode, index) of a chain.
struct ChunkWrite {
  uint32_t chain_id = 0;
  uint64_t inode = 0;
  uint64_t index = 0;
  uint32_t offset = 0;
  const void* data = nullptr;  // must stay valid during the call
  uint32_t length = 0;
  uint32_t chunk_size = 1u << 20;  // the file layout's chunk size
  // When not empty: the ranges written (ascending, not overlapping), their
  // bytes one after another in `data` (`length` in all); `offset` is then
  // unused. The servers apply them as one update (one copy-on-write of the
  // chunk per replica instead of one per range).
  std::vector<ChunkExtent> extents;
};

// The chunk after an acknowledged update (committed on every SERVING replica).
struct ChunkVersion {
  uint64_t version = 0;
  uint32_t length = 0;
  uint32_t crc = 0;  // CRC32C of the whole chunk
};

// One range of a batch read: inputs, then what the read produced.
struct ReadOp {
  uint32_t chain_id = 0;
  uint64_t inode = 0;
  uint64_t index = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
  void* dest = nullptr;    // `length` bytes; must stay valid until BatchRead returns
  // 0: any SERVING replica; else only this target (tools, tests): its errors
  // are final except transport failures, which are retried on it.
  uint32_t target_id = 0;

  Status status;           // kNotFound (no such chunk), kCorrupt, ...
  uint32_t bytes = 0;      // bytes read (fewer at the chunk's end)
  uint64_t version = 0;    // committed version they belong to
  uint32_t served_by = 0;  // target that served them
};

class DataClient {
 public:
  static Result<std::unique_ptr<DataClient>> Create(const DataClientOptions& options);
  ~DataClient();
  DataClient(const DataClient&) = delete;
  DataClient& operator=(const DataClient&) = delete;

  // Registers memory that reads land in (and writes are sent from) without a
  // copy. The memory must outlive the client.
  Status RegisterMemory(void* addr, size_t len);

  // Writes through the chain; returns once the update is committed on every
  // SERVING replica. Retries against a refreshed map within retry_budget_ms.
  Result<ChunkVersion> Write(const ChunkWrite& w);
  // Sets a chunk's length (cut or zero-extend) through the chain.
  Result<ChunkVersion> Truncate(uint32_t chain_id, uint64_t inode, uint64_t index, uint32_t length,
                                uint32_t chunk_size);
  // Removes chunks of a file (all of them when `indexes` is empty) from every
  // member of the chain; returns how many the head had.
  Result<uint64_t> RemoveChunks(uint32_t chain_id, uint64_t inode, const std::vector<uint64_t>& indexes);
  // All chunks of a file from every member of each of `chains`, all at once
  // (one round trip); returns how many the chains' heads had.
  Result<uint64_t> RemoveFile(const std::vector<uint32_t>& chains, uint64_t inode);

  // Reads every op. Returns when all are done; each op has its own status.
  // `on_done(i)`, if given, runs as op i completes (out of order, on an
  // internal thread; keep it short). A non-OK return means the batch itself
  // could not run (no map).
  Status BatchRead(std::span<ReadOp> ops, const std::function<void(size_t)>& on_done = nullptr);

  // Metadata of chunks on one target (explicit indexes, or all of `inode`).
  Result<std::vector<datasvc::ChunkMeta>> QueryChunks(uint32_t target_id, uint64_t inode,
                                                      const std::vector<uint64_t>& indexes = {});
  // Verifies every chunk of a target on its server (reads all stored bytes).
  Result<datasvc::ScrubResponse> Scrub(uint32_t target_id);

  // The cached cluster map / a fresh one from mgmtd.
  Result<mgmt::ClusterMap> Map();
  Result<mgmt::ClusterMap> RefreshMap();
  // The current RPC client (replaced when a data server restarts; the old
  // one stays alive as long as this DataClient).
  rpc::RpcClient* rpc();

 private:
  struct Batch;
  DataClient() = default;
  Result<rpc::Peer> PeerOfTarget(const mgmt::ClusterMap& map, uint32_t target_id);
  // Sends an update to the chain's head, retrying within retry_budget_ms.
  Result<ChunkVersion> Update(uint32_t chain_id, const std::string& method, const google::protobuf::Message& req,
                              const std::function<void(uint32_t head)>& set_head, const void* payload, size_t len,
                              const std::string& what);

  std::shared_ptr<rpc::RpcClient> Rpc();
  std::shared_ptr<MapClient> Maps();
  // Fetches the map (cached or fresh) and renews the RPC client when a data
  // server restarted: a transport endpoint that knew the old process keeps
  // talking to its stale state (seen with shm after kill -9).
  Result<mgmt::ClusterMap> FetchMap(bool refresh);
  Result<uint64_t> Remove(const std::vector<uint32_t>& chains, uint64_t inode, const std::vector<uint64_t>& indexes);

  DataClientOptions options_;
  rpc::Peer mgmtd_;
  std::mutex peer_mu_;  // guards everything below
  std::shared_ptr<rpc::RpcClient> rpc_;
  std::shared_ptr<MapClient> map_;
  std::vector<std::shared_ptr<rpc::RpcClient>> retired_;
  std::vector<std::pair<void*, size_t>> regions_;
  std::map<uint32_t, uint64_t> incarnations_;  // data server id -> last seen
  std::map<std::string, rpc::Peer> peers_;     // "host:port" -> resolved
};

}  // namespace sluice
