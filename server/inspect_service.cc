// The Inspect service: read-only snapshots of the emulated kernel. Each call
// takes the kernel's locks briefly (snapshot_*) and finishes at once; Watch
// hands the stream to the WatchHub (watch.h).

#include <unistd.h>

#include <fstream>

#include "server/services.h"
#include "server/wire.h"

namespace lwpd::server {

int64_t self_rss_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return -1;
  return resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

namespace {

grpc::ServerUnaryReactor* done(grpc::CallbackServerContext* ctx, const grpc::Status& st) {
  auto* r = ctx->DefaultReactor();
  r->Finish(st);
  return r;
}

}  // namespace

grpc::ServerUnaryReactor* InspectService::ListProcs(grpc::CallbackServerContext* ctx,
                                                    const v1::ListProcsRequest*,
                                                    v1::ListProcsReply* resp) {
  const auto shm = d_.sessions.pids_with_region();
  for (const auto& pi : d_.kernel.snapshot_procs()) {
    v1::ProcInfo* w = resp->add_procs();
    proc_info_to_wire(pi, false, w);
    w->set_transport(shm.count(pi.pid) != 0 ? "shm" : "grpc");
  }
  return done(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InspectService::ListLwps(grpc::CallbackServerContext* ctx,
                                                   const v1::ListLwpsRequest* req,
                                                   v1::ListLwpsReply* resp) {
  if (req->pid() < 0)
    return done(ctx, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "pid must be >= 0"));
  auto pi = d_.kernel.snapshot_proc(req->pid());
  if (!pi) return done(ctx, grpc::Status(grpc::StatusCode::NOT_FOUND, "no such process"));
  proc_info_to_wire(*pi, true, resp->mutable_proc());
  resp->mutable_proc()->set_transport(d_.sessions.pids_with_region().count(pi->pid) != 0 ? "shm"
                                                                                         : "grpc");
  return done(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InspectService::ListCpus(grpc::CallbackServerContext* ctx,
                                                   const v1::ListCpusRequest*,
                                                   v1::ListCpusReply* resp) {
  for (const auto& ci : d_.kernel.snapshot_cpus()) cpu_info_to_wire(ci, resp->add_cpus());
  return done(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InspectService::Stats(grpc::CallbackServerContext* ctx,
                                                const v1::StatsRequest*, v1::StatsReply* resp) {
  auto procs = d_.kernel.snapshot_procs();
  int nlwps = 0;
  for (const auto& pi : procs) nlwps += pi.nlwps;
  resp->set_nprocs(static_cast<int32_t>(procs.size()));
  resp->set_nlwps(nlwps);
  resp->set_ncpus(d_.kernel.ncpus());
  resp->set_uptime_ms(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now() - d_.started)
                                                .count()));
  resp->set_syscalls(d_.entries.load(std::memory_order_relaxed));
  resp->set_rss_bytes(self_rss_bytes());
  resp->set_version(d_.version);
  if (d_.watch != nullptr) {
    resp->set_watchers(d_.watch->watchers());
    resp->set_watch_dropped(d_.watch->dropped());
    resp->set_watchers_cut_off(d_.watch->cut_off());
  }
  const emul::LimitInfo li = d_.kernel.snapshot_limits();
  resp->set_maxproc(li.maxproc);
  resp->set_maxproc_per_uid(li.maxuprc);
  resp->set_maxlwp_per_uid(li.nthr_per_uid);
  for (const auto& u : li.uids) {
    auto* o = resp->add_uids();
    o->set_uid(u.uid);
    o->set_nprocs(u.nprocs);
    o->set_nlwps(u.nthr);
  }
  resp->set_unresponsive_kills(li.unresponsive_kills);
  resp->set_kick_timeout_ms(static_cast<uint32_t>(d_.kernel.config().kick_timeout.count()));
  if (d_.listener != nullptr) {
    const ListenerStats ls = d_.listener->stats();
    resp->set_conns_accepted(ls.accepted);
    resp->set_conns_closed_half_open(ls.closed_half_open);
    resp->set_conns_refused_over_cap(ls.refused_over_cap);
    resp->set_accept_errors(ls.accept_errors);
    resp->set_conns_refused_fd_limit(ls.refused_fd_limit);
    resp->set_conns_closed_bad_preface(ls.closed_bad_preface);
    resp->set_conns_live(ls.live);
    resp->set_conns_region_hellos(ls.region_hellos);
  }
  resp->set_sessions_cut_off(d_.sessions.cut_offs());
  resp->set_regions(static_cast<uint32_t>(d_.sessions.pids_with_region().size()));
  resp->set_offer_regions(d_.offer_regions);
  resp->set_kicks_direct(d_.kicks_direct.load(std::memory_order_relaxed));
  if (const auto& seed = d_.kernel.config().sched_seed) {
    resp->set_sched_mode("deterministic");
    resp->set_sched_seed(*seed);
    resp->set_sched_strategy(
        d_.kernel.config().sched_strategy == emul::KernelConfig::SchedStrategy::kPct ? "pct"
                                                                                     : "random");
    resp->set_sched_realtime_preemptions(d_.kernel.sched_realtime_preemptions());
  } else {
    resp->set_sched_mode("normal");
  }
  return done(ctx, grpc::Status::OK);
}

grpc::ServerWriteReactor<v1::WatchReply>* InspectService::Watch(grpc::CallbackServerContext*,
                                                                const v1::WatchRequest* req) {
  auto refuse = [](grpc::StatusCode code, const char* msg) {
    struct Refused final : grpc::ServerWriteReactor<v1::WatchReply> {
      void OnDone() override { delete this; }
    };
    auto* r = new Refused;
    r->Finish(grpc::Status(code, msg));
    return r;
  };
  if (req->pid() < 0) return refuse(grpc::StatusCode::INVALID_ARGUMENT, "pid must be >= 0");
  if (d_.watch == nullptr || d_.shutting_down.load(std::memory_order_relaxed))
    return refuse(grpc::StatusCode::UNAVAILABLE, "lwpd is shutting down");
  return d_.watch->start_watch(req->pid(), req->buffer());
}

}  // namespace lwpd::server
