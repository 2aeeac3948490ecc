#include "server/grpc_port.h"

#include "server/wire.h"

namespace lwpd::server {

namespace {
constexpr int kSysLwpCreate = netbsd::sysno(netbsd::Sysno::kLwpCreate);
}  // namespace

// ---- the Session stream ----------------------------------------------------------------

bool GrpcPort::attach_session(SessionStream* s, v1::SessionEvent attached) {
  MutexLock g(mu_);
  if (closed_ || orphaned_) return false;
  session_ = s;
  s->Send(std::move(attached));
  for (auto& ev : early_events_) s->Send(std::move(ev));
  early_events_.clear();
  if (released_) s->FinishAfterWrites(final_status_);
  return true;
}

void GrpcPort::detach_session(SessionStream* s) {
  MutexLock g(mu_);
  if (session_ == s) session_ = nullptr;
  orphaned_ = true;
  early_events_.clear();
}

void GrpcPort::orphan() {
  MutexLock g(mu_);
  orphaned_ = true;
  early_events_.clear();
}

void GrpcPort::released() {
  MutexLock g(mu_);
  released_ = true;
  if (session_ != nullptr) session_->FinishAfterWrites(final_status_);
}

void GrpcPort::fail_session(grpc::Status st) {
  MutexLock g(mu_);
  if (final_status_.ok()) final_status_ = std::move(st);
}

void GrpcPort::session_event_locked(v1::SessionEvent ev) {
  if (session_ != nullptr) {
    session_->Send(std::move(ev));
  } else if (!orphaned_ && !closed_) {
    early_events_.push_back(std::move(ev));
  }
}

// ---- LWP transports ----------------------------------------------------------------------

void GrpcPort::add_lwp(lwpid_t lid) {
  MutexLock g(mu_);
  if (!exited_) routes_.try_emplace(lid);
}

GrpcPort::Check GrpcPort::begin_entry(lwpid_t lid, ReturnTarget* t, int sysno) {
  MutexLock g(mu_);
  if (closed_ || exited_) return Check::kClosed;
  auto it = routes_.find(lid);
  if (it == routes_.end()) return Check::kNoSuchLwp;
  Route& r = it->second;
  if (!r.buffered.empty()) return Check::kUncollected;
  if (!r.user || r.target != nullptr) return Check::kBusy;
  r.target = t;
  r.user = false;
  r.pending_sysno = sysno;
  return Check::kOk;
}

bool GrpcPort::abort_entry(lwpid_t lid, ReturnTarget* t) {
  MutexLock g(mu_);
  auto it = routes_.find(lid);
  if (it == routes_.end() || it->second.target != t) return false;
  it->second.target = nullptr;
  it->second.user = true;  // the kernel refused: nothing changed on its side
  it->second.pending_sysno = 0;
  return true;
}

GrpcPort::Check GrpcPort::start_wait(lwpid_t lid, ReturnTarget* t) {
  MutexLock g(mu_);
  if (closed_ || exited_) return Check::kClosed;
  auto it = routes_.find(lid);
  if (it == routes_.end()) return Check::kNoSuchLwp;
  Route& r = it->second;
  if (r.target != nullptr) return Check::kBusy;
  if (!r.buffered.empty()) {
    v1::SyscallReturn ret = std::move(r.buffered.front());
    r.buffered.pop_front();
    r.user = true;
    t->Deliver(ret);
    return Check::kDelivered;
  }
  if (r.user) return Check::kRunning;
  r.target = t;
  return Check::kOk;
}

bool GrpcPort::cancel_entry(lwpid_t lid, ReturnTarget* t) {
  MutexLock g(mu_);
  auto it = routes_.find(lid);
  if (it == routes_.end() || it->second.target != t) return false;
  // The LWP stays in the kernel; its return will be buffered.
  it->second.target = nullptr;
  return true;
}

GrpcPort::Check GrpcPort::open_channel(lwpid_t lid, ReturnTarget* ch) {
  MutexLock g(mu_);
  if (closed_ || exited_) return Check::kClosed;
  auto it = routes_.find(lid);
  if (it == routes_.end()) return Check::kNoSuchLwp;
  Route& r = it->second;
  if (r.channel != nullptr) return Check::kBusy;
  r.channel = ch;
  if (r.target == nullptr) {
    while (!r.buffered.empty()) {
      r.user = true;
      ch->Deliver(r.buffered.front());
      r.buffered.pop_front();
    }
  }
  return Check::kOk;
}

void GrpcPort::close_channel(lwpid_t lid, ReturnTarget* ch) {
  MutexLock g(mu_);
  auto it = routes_.find(lid);
  if (it == routes_.end()) return;
  if (it->second.channel == ch) it->second.channel = nullptr;
  if (it->second.target == ch) it->second.target = nullptr;  // its return gets buffered
}

void GrpcPort::shutdown(const grpc::Status& st) {
  MutexLock g(mu_);
  closed_ = true;
  for (auto& [lid, r] : routes_) {
    if (r.target != nullptr) r.target->Fail(st);
    if (r.channel != nullptr && r.channel != r.target) r.channel->Fail(st);
    r.target = r.channel = nullptr;
  }
  if (session_ != nullptr) session_->FinishNow(st);
  early_events_.clear();
}

bool GrpcPort::exited() const {
  MutexLock g(mu_);
  return exited_;
}

// ---- emul::UserPort ------------------------------------------------------------------------

void GrpcPort::deliver_locked(Route& r, v1::SyscallReturn ret) {
  ReturnTarget* t = r.target != nullptr ? r.target : r.channel;
  r.target = nullptr;
  r.pending_sysno = 0;
  if (t == nullptr) {
    r.buffered.push_back(std::move(ret));
    return;
  }
  r.user = true;
  t->Deliver(ret);
}

void GrpcPort::lwp_return(lwpid_t lid, const emul::SysReturn& ret, uint64_t gen) {
  MutexLock g(mu_);
  Route& r = routes_[lid];
  // The new LWP becomes nameable once its creator learns its LID (it may
  // already have a route if it was dispatched before its creator returned).
  if (r.pending_sysno == kSysLwpCreate && ret.kind == emul::ReturnKind::kSyscall &&
      ret.error == netbsd::Errno::kOk) {
    routes_.try_emplace(static_cast<lwpid_t>(ret.retval));
  }
  v1::SyscallReturn w;
  return_to_wire(ret, gen, &w);
  deliver_locked(routes_[lid], std::move(w));  // re-find: try_emplace may rehash
}

void GrpcPort::lwp_kick(lwpid_t lid, uint64_t gen) {
  MutexLock g(mu_);
  if (auto it = routes_.find(lid);
      it != routes_.end() && it->second.channel != nullptr && it->second.channel->Kick(gen))
    return;
  v1::SessionEvent ev;
  ev.mutable_kick()->set_lid(lid);
  ev.mutable_kick()->set_gen(gen);
  session_named_.insert(lid);
  session_event_locked(std::move(ev));
}

void GrpcPort::lwp_signal(lwpid_t lid, const emul::SigInfo& info) {
  MutexLock g(mu_);
  v1::SessionEvent ev;
  ev.mutable_signal()->set_lid(lid);
  siginfo_to_wire(info, ev.mutable_signal()->mutable_info());
  session_named_.insert(lid);
  session_event_locked(std::move(ev));
}

void GrpcPort::lwp_exited(lwpid_t lid) {
  MutexLock g(mu_);
  if (auto it = routes_.find(lid); it != routes_.end()) {
    Route& r = it->second;
    if (r.target != nullptr) r.target->Exited();
    if (r.channel != nullptr && r.channel != r.target) r.channel->Exited();
    routes_.erase(it);
  }
  const bool named = session_named_.erase(lid) > 0;
  if (region_served_ && !named) return;  // top comment, "Exit notices"
  v1::SessionEvent ev;
  ev.mutable_lwp_exited()->set_lid(lid);
  session_event_locked(std::move(ev));
}

void GrpcPort::set_region_served() {
  MutexLock g(mu_);
  region_served_ = true;
}

void GrpcPort::proc_unresponsive(lwpid_t) {
  if (on_unresponsive_) on_unresponsive_();
}

void GrpcPort::proc_exited(const emul::ExitStatus& status) {
  {
    MutexLock g(mu_);
    exited_ = true;
    v1::ExitStatus st;
    exit_status_to_wire(status, &st);
    for (auto& [lid, r] : routes_) {
      if (r.target != nullptr) r.target->ProcExited(st);
      if (r.channel != nullptr && r.channel != r.target) r.channel->ProcExited(st);
    }
    routes_.clear();
    session_named_.clear();
    v1::SessionEvent ev;
    *ev.mutable_proc_exited() = st;
    session_event_locked(std::move(ev));
    // The stream ends in released(), once the process is out of the kernel's table.
  }
  // Still under the process lock: the hook only schedules the release.
  if (on_exit_) on_exit_();
}

}  // namespace lwpd::server
