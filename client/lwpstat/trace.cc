// lwpstat trace PID: a debugger on the Trace service (admin token). It opens a trace
// session, attaches (PT_ATTACH), collects the attach stop, sets the event mask, continues,
// and then reports every stop of the tracee, continuing it after each:
//
//   human   HH:MM:SS.uuuuuu  pid P  SIGNAL   CREATE lwp L | EXIT lwp L | signal [lwp L]
//           and at the end "... pid P  exited S" / "killed by SIGNAL" / "detached"
//   --json  one TraceReport object per line (the exit too; nothing for a detach)
//
// The attach stop (SIGSTOP) is the first line; it does not count for --count. Signals
// other than SIGSTOP and SIGTRAP are passed on to the tracee (PT_CONTINUE data).
// It ends (exit 0) when the tracee exits, after --count stops, or on SIGINT/SIGTERM; in
// the last two cases it detaches so the tracee runs on (PT_STOP first if it is running,
// and the stop collected). Ending the session without detaching would kill the tracee.
//
// Signals: SIGINT/SIGTERM are blocked in every thread (trace_block_signals(), before gRPC
// starts its threads) and taken by a sigwait thread, which cancels the Wait in progress.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "common/netbsd_abi.h"
#include "lwpstat.h"

namespace lwpd::lwpstat {

namespace nb = ::lwpd::netbsd;

namespace {

// NetBSD signal number -> name ("SIG36" beyond the named ones, "" for 0).
std::string sig_name(int sig) {
  if (sig == 0) return "";
  if (const char* n = nb::signal_name(sig)) return n;
  return "SIG" + std::to_string(sig);
}

sigset_t trace_signals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  return s;
}

// Takes SIGINT/SIGTERM (blocked everywhere) with sigwait and calls `on_signal` once.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void()> on_signal)
      : on_signal_(std::move(on_signal)), t_([this] { run(); }) {}
  ~SignalWatcher() {
    stop_.store(true, std::memory_order_release);  // matched by the load in run()
    pthread_kill(t_.native_handle(), SIGTERM);
    t_.join();
  }

 private:
  void run() {
    const sigset_t set = trace_signals();
    bool seen = false;
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (stop_.load(std::memory_order_acquire)) return;
      if (!seen) on_signal_();
      seen = true;
    }
  }
  std::function<void()> on_signal_;
  std::atomic<bool> stop_{false};
  std::thread t_;
};

// One debugger: the session stream, and the Ptrace/Wait calls made with its token.
class Debugger {
 public:
  Debugger(Inspector& in, const GlobalOptions& g) : in_(in), g_(g) {
    stub_ = v1::Trace::NewStub(in.channel());
  }

  // Opens the session (admin token); errors as the admin commands'.
  Error open(const std::string& admin_token) {
    session_ctx_.AddMetadata("lwpd-admin-token", admin_token);
    session_ = stub_->Session(&session_ctx_);
    v1::TraceSessionRequest hello;
    hello.set_name("lwpstat trace");
    session_->Write(hello);
    v1::TraceSessionEvent ev;
    if (!session_->Read(&ev) || !ev.has_opened()) {
      grpc::Status st = session_->Finish();
      if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED)
        return {kExitFailed, "lwpd at " + in_.endpoint() + " refused the admin token"};
      if (st.ok()) return {kExitFailed, "lwpd at " + in_.endpoint() + " ended the trace session"};
      return in_.status_error(st);
    }
    token_ = ev.opened().token();
    return Error::none();
  }

  // Ends the session: half-close, then the final status.
  void close() {
    if (!session_) return;
    session_->WritesDone();
    (void)session_->Finish();
    session_.reset();
  }

  Error ptrace(int req, int32_t pid, int32_t data, v1::SyscallReturn* out, int32_t mask = 0,
               int32_t lwpid = 0) {
    v1::PtraceArgs a;
    a.set_request(req);
    a.set_pid(pid);
    a.set_data(data);
    a.set_event_mask(mask);
    a.set_lwpid(lwpid);
    grpc::ClientContext ctx;
    ctx.AddMetadata("lwpd-trace-token", token_);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(g_.timeout_ms));
    return in_.status_error(stub_->Ptrace(&ctx, a, out));
  }

  // Wait for `pid`. Interruptible: a signal (interrupt()) ends it with *interrupted set
  // and no error; otherwise it has no deadline (a tracee may run for a long time).
  Error wait(int32_t pid, bool interruptible, v1::SyscallReturn* out, bool* interrupted) {
    *interrupted = false;
    v1::WaitArgs a;
    a.set_pid(pid);
    grpc::ClientContext ctx;
    ctx.AddMetadata("lwpd-trace-token", token_);
    if (!interruptible)
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(g_.timeout_ms));
    {
      std::lock_guard g(mu_);
      if (interruptible && interrupted_) {
        *interrupted = true;
        return Error::none();
      }
      if (interruptible) waiting_ = &ctx;
    }
    grpc::Status st = stub_->Wait(&ctx, a, out);
    std::lock_guard g(mu_);
    waiting_ = nullptr;
    if (interruptible && interrupted_ && st.error_code() == grpc::StatusCode::CANCELLED) {
      *interrupted = true;
      return Error::none();
    }
    return in_.status_error(st);
  }

  // From the signal thread.
  void interrupt() {
    std::lock_guard g(mu_);
    interrupted_ = true;
    if (waiting_ != nullptr) waiting_->TryCancel();
  }
  bool interrupted() {
    std::lock_guard g(mu_);
    return interrupted_;
  }

 private:
  Inspector& in_;
  const GlobalOptions& g_;
  std::unique_ptr<v1::Trace::Stub> stub_;
  grpc::ClientContext session_ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::TraceSessionRequest, v1::TraceSessionEvent>>
      session_;
  std::string token_;
  std::mutex mu_;                           // leaf
  grpc::ClientContext* waiting_ = nullptr;  // [mu_] the interruptible Wait in progress
  bool interrupted_ = false;                // [mu_]
};

std::string errno_text(v1::Errno e) {
  std::string n = v1::Errno_Name(e);
  return n.rfind("ERRNO_", 0) == 0 ? n.substr(6) : n;
}

// A kernel refusal of request `what` as the line to print.
Error refused(const char* what, int32_t pid, v1::Errno e) {
  if (e == v1::ERRNO_ESRCH) return {kExitFailed, "no process " + std::to_string(pid)};
  if (e == v1::ERRNO_EBUSY && std::string(what) == "PT_ATTACH")
    return {kExitFailed, "pid " + std::to_string(pid) + " is already traced (EBUSY)"};
  return {kExitFailed, std::string(what) + " pid " + std::to_string(pid) + ": " + errno_text(e)};
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string clock_text(int64_t ns) {
  const std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%06lld", tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>((ns / 1000) % 1000000));
  return buf;
}

void print_report(const v1::TraceReport& r, bool json) {
  if (json) {
    std::fputs(to_json_line(r).c_str(), stdout);
  } else {
    std::ostringstream o;
    o << clock_text(r.time_ns()) << "  pid " << r.pid() << "  ";
    if (r.kind() == v1::WAIT_EXITED) {
      o << "exited " << r.status();
    } else if (r.kind() == v1::WAIT_SIGNALED) {
      o << "killed by " << r.signal();
    } else {
      char sig[16];
      std::snprintf(sig, sizeof sig, "%-8s", r.signal().c_str());
      o << sig << " ";
      if (r.event() == v1::TRACE_EVENT_LWP_CREATE) {
        o << "CREATE lwp " << r.lwp();
      } else if (r.event() == v1::TRACE_EVENT_LWP_EXIT) {
        o << "EXIT lwp " << r.lwp();
      } else {
        o << "signal";
        if (r.lwp() != 0) o << " lwp " << r.lwp();
      }
    }
    std::printf("%s\n", o.str().c_str());
  }
  std::fflush(stdout);
}

// The mask of --events: "create", "exit" (either or both), or "none".
int32_t event_mask(const std::vector<std::string>& events) {
  int32_t m = 0;
  for (const auto& e : events) {
    if (e == "create") m |= nb::PTRACE_LWP_CREATE;
    if (e == "exit") m |= nb::PTRACE_LWP_EXIT;
  }
  return m;
}

// The trace of one process, from attach to exit or detach.
class Trace {
 public:
  Trace(Debugger& dbg, const GlobalOptions& g, const TraceOptions& t)
      : dbg_(dbg), g_(g), t_(t), pid_(t.pid) {}

  int run() {
    if (Error e = attach()) return report(e);
    for (int64_t n = 0;;) {
      v1::SyscallReturn w;
      bool intr = false;
      if (Error e = dbg_.wait(pid_, true, &w, &intr)) return report(e);
      if (intr) return detach_running();
      if (w.error() != v1::ERRNO_OK) return report(refused("wait", pid_, w.error()));
      v1::TraceReport r;
      if (Error e = describe(w, &r)) return report(e);
      print_report(r, g_.json);
      if (r.kind() != v1::WAIT_STOPPED) return kExitOk;  // exited
      const int32_t pass = passed_signal(r);
      if ((t_.count > 0 && ++n >= t_.count) || dbg_.interrupted()) return detach_stopped(pass);
      v1::SyscallReturn c;
      if (Error e = checked(nb::PT_CONTINUE, pass, &c)) return report(e);
    }
  }

 private:
  // PT_ATTACH, its SIGSTOP stop, the event mask, PT_CONTINUE.
  Error attach() {
    v1::SyscallReturn r;
    if (Error e = checked(nb::PT_ATTACH, 0, &r)) return e;
    bool intr = false;
    if (Error e = dbg_.wait(pid_, false, &r, &intr)) return e;
    if (r.error() != v1::ERRNO_OK) return refused("wait", pid_, r.error());
    if (r.wait().kind() != v1::WAIT_STOPPED)
      return {kExitFailed, "pid " + std::to_string(pid_) + " exited while being attached"};
    const int32_t mask = event_mask(t_.events);
    if (!g_.json)
      std::printf("attached to pid %d (events:%s%s%s)\n", pid_,
                  mask & nb::PTRACE_LWP_CREATE ? " create" : "",
                  mask & nb::PTRACE_LWP_EXIT ? " exit" : "", mask == 0 ? " none" : "");
    // The attach stop is reported too (not counted): once it is out, every later stop
    // of the tracee will be seen.
    v1::TraceReport rep;
    if (Error e = describe(r, &rep)) return e;
    print_report(rep, g_.json);
    if (Error e = checked(nb::PT_SET_EVENT_MASK, nb::PTRACE_EVENT_SIZE, &r, mask)) return e;
    return checked(nb::PT_CONTINUE, passed_signal(rep), &r);
  }

  // A ptrace request whose errno is an error.
  Error checked(int req, int32_t data, v1::SyscallReturn* r, int32_t mask = 0) {
    if (Error e = dbg_.ptrace(req, pid_, data, r, mask)) return e;
    if (r->error() == v1::ERRNO_OK) return Error::none();
    static const char* const names[] = {
        "PT_ATTACH", "PT_CONTINUE",    "PT_SET_EVENT_MASK",   "PT_STOP",
        "PT_DETACH", "PT_GET_SIGINFO", "PT_GET_PROCESS_STATE"};
    const char* what = req == nb::PT_ATTACH           ? names[0]
                       : req == nb::PT_CONTINUE       ? names[1]
                       : req == nb::PT_SET_EVENT_MASK ? names[2]
                       : req == nb::PT_STOP           ? names[3]
                       : req == nb::PT_DETACH         ? names[4]
                       : req == nb::PT_GET_SIGINFO    ? names[5]
                                                      : names[6];
    return refused(what, pid_, r->error());
  }

  // A Wait result as a report; for a stop, its siginfo and LWP event.
  Error describe(const v1::SyscallReturn& w, v1::TraceReport* r) {
    r->set_time_ns(now_ns());
    r->set_pid(pid_);
    r->set_kind(w.wait().kind());
    if (w.wait().kind() == v1::WAIT_EXITED) {
      r->set_status(w.wait().code());
      return Error::none();
    }
    r->set_signo(w.wait().code());
    r->set_signal(sig_name(w.wait().code()));
    if (w.wait().kind() != v1::WAIT_STOPPED) return Error::none();
    v1::SyscallReturn si, st;
    if (Error e = checked(nb::PT_GET_SIGINFO, nb::PTRACE_SIGINFO_SIZE, &si)) return e;
    r->set_lwp(si.ptrace().psi_lwpid());
    if (si.ptrace().siginfo().signo() != nb::NB_SIGTRAP ||
        si.ptrace().siginfo().code() != nb::NB_TRAP_LWP)
      return Error::none();
    if (Error e = checked(nb::PT_GET_PROCESS_STATE, nb::PTRACE_STATE_SIZE, &st)) return e;
    r->set_lwp(st.ptrace().report_lwp());
    if (st.ptrace().report_event() == nb::PTRACE_LWP_CREATE)
      r->set_event(v1::TRACE_EVENT_LWP_CREATE);
    else if (st.ptrace().report_event() == nb::PTRACE_LWP_EXIT)
      r->set_event(v1::TRACE_EVENT_LWP_EXIT);
    return Error::none();
  }

  static int32_t passed_signal(const v1::TraceReport& r) {
    return r.signo() == nb::NB_SIGSTOP || r.signo() == nb::NB_SIGTRAP ? 0 : r.signo();
  }

  // The tracee is stopped and its stop collected: let it go, passing `sig` on.
  int detach_stopped(int32_t sig) {
    v1::SyscallReturn r;
    if (Error e = checked(nb::PT_DETACH, sig, &r)) return report(e);
    if (!g_.json) std::printf("detached from pid %d\n", pid_);
    std::fflush(stdout);
    return kExitOk;
  }

  // Interrupted while the tracee runs: stop it, collect that stop (or whatever stop or
  // exit came first), then detach.
  int detach_running() {
    v1::SyscallReturn r;
    if (Error e = checked(nb::PT_STOP, 0, &r)) return report(e);
    bool intr = false;
    if (Error e = dbg_.wait(pid_, false, &r, &intr)) return report(e);
    if (r.error() != v1::ERRNO_OK) return report(refused("wait", pid_, r.error()));
    v1::TraceReport rep;
    if (Error e = describe(r, &rep)) return report(e);
    if (rep.kind() != v1::WAIT_STOPPED) {
      print_report(rep, g_.json);  // it exited meanwhile
      return kExitOk;
    }
    // A stop other than ours came first: report it (ours is dropped by the detach).
    const bool ours = rep.signo() == nb::NB_SIGSTOP && rep.event() == v1::TRACE_EVENT_NONE;
    if (!ours) print_report(rep, g_.json);
    return detach_stopped(passed_signal(rep));
  }

  Debugger& dbg_;
  const GlobalOptions& g_;
  const TraceOptions& t_;
  const int32_t pid_;
};

}  // namespace

void trace_block_signals() {
  const sigset_t s = trace_signals();
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
}

int cmd_trace(Inspector& in, const GlobalOptions& g, const AdminOptions& a, const TraceOptions& t) {
  std::string token;
  if (Error e = admin_token(in.endpoint(), a, &token)) return report(e);
  Debugger dbg(in, g);
  if (Error e = dbg.open(token)) return report(e);
  int rc = kExitFailed;
  {
    SignalWatcher sw([&dbg] { dbg.interrupt(); });
    rc = Trace(dbg, g, t).run();
  }
  dbg.close();  // after a detach (or the exit) there is nothing left for it to kill
  return rc;
}

}  // namespace lwpd::lwpstat
