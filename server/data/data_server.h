// DataServer: the targets of one sluice-data process behind DataService and
// ChainService, with chain replication and resync.
//
// Chain replication (CRAQ-style). A chain's members come from the cluster
// map, head first; SERVING members form the replication path, SYNCING members
// (returning targets, appended at the tail) receive every update best-effort
// from the last SERVING member. An update enters at the head (the first
// SERVING member), which serializes updates of one chunk, stores a pending
// version, forwards it (ForwardUpdate, bytes by RMA) to the next SERVING
// member, and so on; the last SERVING member stores it committed, copies it
// to the SYNCING members, and answers; each member then commits its pending
// version on the way back. The head answers the client only after that, so an
// acknowledged update is committed on every SERVING member. A failed forward
// drops the pending version and fails the update (kUnavailable/kStaleMap);
// the client retries against the new map, and duplicates are recognized by
// version (ChunkStore's already_applied).
//
// Resync. When the map shows a local target SYNCING, a thread pages through
// every chunk of a SERVING chain peer (ListChunks) and installs (BatchRead +
// ChunkStore::Install) each one it lacks or holds an older version of;
// passes repeat until one copies nothing, then it reports the target synced
// to mgmtd. Reads of a target that is not SERVING are refused (kUnavailable).
//
// Map versions: every handler refuses a request built against an older map
// than the server's (nonzero map_version) with kStaleMap, and every response
// carries the server's map version.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/config.h"
#include "common/rpc.h"
#include "proto/data.pb.h"
#include "proto/data_chain.pb.h"
#include "proto/mgmt.pb.h"
#include "server/data/chunk_store.h"

namespace sluice::data {

struct DataServerOptions {
  ClusterConfig config;
  uint32_t server_id = 0;
  // Per-target engine options (dir and target_id are filled in per target).
  ChunkStoreOptions store;
  // Time budget of one forward to a chain successor.
  uint32_t forward_timeout_ms = 5000;
  // Test hook (fault tests): the first forwarded update of a chunk of this
  // inode (every `every`-th one when not 0) is applied, then answered this
  // many ms late (0: off), so that its sender's forward times out although
  // the update is stored here.
  uint64_t test_late_forward_inode = 0;
  uint32_t test_late_forward_ms = 0;
  uint32_t test_late_forward_every = 0;
  // Called by resync once a SYNCING target caught up (MgmtAgent::ReportSynced).
  std::function<Status(uint32_t target_id)> report_synced;
};

class DataServer {
 public:
  // Opens one ChunkStore per configured target of options.server_id. Errors
  // name the config file and the target's field.
  static Result<std::unique_ptr<DataServer>> Open(const DataServerOptions& options);
  ~DataServer();
  DataServer(const DataServer&) = delete;
  DataServer& operator=(const DataServer&) = delete;

  // Registers DataService and ChainService handlers (before server->Start()).
  void RegisterHandlers(rpc::RpcServer* server);
  // Adopts a newer cluster map (MgmtAgent's on_map); starts resync of local
  // SYNCING targets. Older or equal versions are ignored.
  void OnMap(const mgmt::ClusterMap& map);
  // Capacity and usage of the local targets, for mgmtd.
  std::vector<mgmt::TargetInfo> TargetUsage();
  // Stops resync threads; handlers must no longer run.
  void Stop();

  uint64_t map_version() const;

 private:
  struct Update;  // one update travelling down a chain
  explicit DataServer(const DataServerOptions& options) : options_(options) {}

  ChunkStore* Store(uint32_t target_id);
  Status CheckMap(rpc::CallContext& ctx);
  bool WaitMapVersion(uint64_t version, uint32_t timeout_ms);
  mgmt::ClusterMap MapSnapshot() const;
  Result<rpc::Peer> PeerOfTarget(const mgmt::ClusterMap& map, uint32_t target_id);

  // The update path (see the file comment).
  Result<ChunkMeta> ApplyAtHead(rpc::CallContext& ctx, uint32_t chain_id, Update& u);
  Result<ChunkMeta> ApplyInChain(const mgmt::ClusterMap& map, const mgmt::ChainInfo& chain,
                                 uint32_t my_target, Update& u);
  Result<UpdateResult> StoreLocally(ChunkStore* store, Update& u, bool commit);
  Status Forward(const mgmt::ClusterMap& map, uint32_t chain_id, uint32_t to_target, const Update& u,
                 bool is_tail, ChunkMeta* meta_out);

  // Handlers.
  Status HandleBatchRead(rpc::CallContext& ctx, const datasvc::BatchReadRequest& req,
                         datasvc::BatchReadResponse* resp);
  Status HandleForward(rpc::CallContext& ctx, const datasvc::ForwardUpdateRequest& req,
                       datasvc::ForwardUpdateResponse* resp);

  // Resync of one local target (runs on its own thread).
  void ResyncLoop(uint32_t target_id);
  // Copies what `target_id` lacks from `peer_target`; returns chunks copied.
  // *peer_version: the peer's map version when the pass began listing.
  Result<uint64_t> ResyncPass(uint32_t target_id, uint32_t peer_target, uint64_t* peer_version);
  // Copies the committed versions of `need` from a peer target into a local
  // one (Install at the peer's version); `why` prefixes errors ("resync").
  // Chunks removed on the peer meanwhile, or already newer here, are skipped.
  Result<uint64_t> CopyChunks(uint32_t target_id, const rpc::Peer& peer, uint32_t peer_target,
                              std::span<const datasvc::ChunkMeta* const> need, const std::string& why,
                              uint32_t timeout_ms);
  // The successor answered a forward of version v with its own, different v
  // (see ApplyInChain): drop the local pending v, install the successor's
  // copy, and fail kBusy so the writer retries on top of it.
  Status AdoptSuccessorVersion(const mgmt::ClusterMap& map, uint32_t chain_id, uint32_t my_target,
                               uint32_t next, const Update& u, const ChunkMeta& down);

  // ApplyInChain under the chunk's lock, counted as in progress under `map`
  // (BeginUpdate) from before the wait; kTimeout, not applied, when the
  // call's deadline comes first.
  Result<ChunkMeta> ApplyLocked(rpc::CallContext& ctx, const mgmt::ClusterMap& map, const mgmt::ChainInfo& chain,
                                Update& u);
  // Per-(chain, chunk) exclusion at every member: an exact key table, so two
  // heads forwarding to each other can never wait on each other's unrelated
  // chunk. Waits until the monotonic deadline_ns (0: no limit); false if it
  // passed, so a stuck chunk cannot hold every handler thread past its calls.
  bool LockChunk(uint32_t chain_id, const ChunkId& chunk, uint64_t deadline_ns);
  void UnlockChunk(uint32_t chain_id, const ChunkId& chunk);

  DataServerOptions options_;
  std::map<uint32_t, std::unique_ptr<ChunkStore>> stores_;  // by target id
  // The client for forwards and resync reads. Replaced by a fresh one when a
  // peer data server restarts (new incarnation in the map): a transport
  // endpoint that knew the old process keeps talking to its stale state
  // (seen with shm after kill -9). Callers hold a reference during a call.
  std::shared_ptr<rpc::RpcClient> PeersRpc();
  void RenewPeersRpc(const mgmt::ClusterMap& old_map, const mgmt::ClusterMap& map);
  // Opens the transport association with every ONLINE peer data server ahead
  // of need (a cheap query), so a chain that re-forms after a failure does
  // not make its first contact then (shm endpoints that saw a killed peer
  // misdeliver to new ones).
  void WarmPeers(const mgmt::ClusterMap& map);
  std::set<std::pair<uint32_t, uint64_t>> warmed_;  // (server id, incarnation), peer_mu_
  std::shared_ptr<rpc::RpcClient> peers_rpc_;

  mutable std::mutex map_mu_;
  std::condition_variable map_cv_;
  mgmt::ClusterMap map_;

  std::mutex peer_mu_;
  std::map<std::string, rpc::Peer> resolved_;  // "host:port" -> peer

  std::mutex lock_mu_;
  std::condition_variable lock_cv_;
  std::set<std::tuple<uint32_t, uint64_t, uint64_t>> locked_;

  // Map versions of the updates in progress here. A resync listing built
  // against map version V waits until none older than V is in progress, so an
  // update that did not know the syncing target has finished before it lists.
  void BeginUpdate(uint64_t map_version);
  void EndUpdate(uint64_t map_version);
  Status WaitUpdatesBefore(uint64_t version, uint32_t timeout_ms);
  std::mutex inflight_mu_;
  std::condition_variable inflight_cv_;
  std::multiset<uint64_t> inflight_;

  std::mutex resync_mu_;
  std::condition_variable resync_cv_;
  bool stopping_ = false;
  std::map<uint32_t, std::thread> resync_threads_;  // by target id
  std::set<uint32_t> resync_running_;

  // Test hook (DataServerOptions::test_late_forward_*): answer this forward late?
  bool TestLateForward(const ChunkId& chunk);
  std::atomic<uint64_t> late_forward_seen_{0};
};

// The engine's chunk metadata as the wire carries it.
void ToWire(const ChunkMeta& m, datasvc::ChunkMeta* out);

}  // namespace sluice::data
