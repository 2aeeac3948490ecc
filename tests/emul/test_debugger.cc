// Debuggers: tracers that are not emulated processes (Kernel::debugger_*, kern_ptrace.cc),
// as the Trace service uses them. The test thread is the debugger; its tracees are
// TestProcs whose LWPs spin in "user code" until the test lets them go. A pending wait is
// waited for on a condition variable set by the kernel's on_change callback (bounded), so
// a lost notification fails the test instead of hanging it.
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>

#include <gtest/gtest.h>

#include "emul/idalloc.h"
#include "lwp_calls_util.h"

namespace lwpd::test {
namespace {

using namespace lwpcalls;
using namespace netbsd;
using DW = Kernel::DebuggerWait;

// The on_change side of one pending wait: fired once, observed by the test thread.
struct Change {
  std::mutex mu;
  std::condition_variable cv;
  int fired = 0;  // [mu]
  std::function<void()> callback() {
    return [this] {
      std::lock_guard g(mu);
      fired++;
      cv.notify_all();
    };
  }
  bool await(std::chrono::milliseconds limit = kSpinLimit) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, limit, [&] { return fired > 0; });
  }
  int count() {
    std::lock_guard g(mu);
    return fired;
  }
};

std::atomic<uint64_t> g_key{1};

SysReturn Dpt(Kernel& k, const ProcRef& d, int req, pid_t pid, int data = 0, PtraceIn in = {}) {
  auto r = k.debugger_ptrace(d, PtraceArgs{.request = req, .pid = pid, .data = data, .in = in});
  if (!r) {
    ADD_FAILURE() << "debugger closed";
    return SysReturn::err(Errno::kESRCH);
  }
  return *r;
}

// wait(2) by the debugger until it has a result: re-waits after each on_change, as the
// Trace service's Wait reactor does.
SysReturn Dwait(Kernel& k, const ProcRef& d, pid_t pid, int options = 0) {
  for (;;) {
    Change c;
    const uint64_t key = g_key++;
    DW w = k.debugger_wait(d, WaitArgs{.pid = pid, .options = options}, key, c.callback());
    if (w.kind == DW::kDone) return w.ret;
    if (w.kind == DW::kClosed) {
      ADD_FAILURE() << "debugger closed";
      return SysReturn::err(Errno::kESRCH);
    }
    if (!c.await()) {
      ADD_FAILURE() << "pending wait never woken";
      if (!k.debugger_wait_cancel(d, key)) c.await();  // fired meanwhile: c must outlive it
      return SysReturn::err(Errno::kETIMEDOUT);
    }
  }
}

void ExpectStopped(const SysReturn& r, pid_t pid, int sig) {
  EXPECT_EQ(r.error, Errno::kOk);
  EXPECT_EQ(r.retval, pid);
  EXPECT_EQ(r.wait.kind, WaitOut::kStopped);
  EXPECT_EQ(r.wait.code, sig);
}

// A tracee whose main LWP spins until `go` is set, then exits with status 0.
struct Tracee {
  std::atomic<bool> go{false};
  std::shared_ptr<TestProc> tp;
  explicit Tracee(Kernel& k) {
    tp = TestProc::start(
        k, [this](U& u) { U_EXPECT(u, u.spin_until([this] { return go.load(); }, kSpinLimit)); });
  }
};

ProcRef Open(Kernel& k) {
  auto r = k.debugger_open(0);
  EXPECT_TRUE(r.ok());
  return r.ok() ? r.release() : nullptr;
}

// PT_ATTACH, the SIGSTOP stop collected (first wait pending: the stop is reported only
// once every LWP left its vCPU, or at once -- both end in the same result), PT_LWPINFO,
// PT_CONTINUE, and the exit status; then ECHILD.
TEST(Debugger, AttachStopContinueExit) {
  Kernel k(test_config());
  Tracee t(k);
  const pid_t tpid = t.tp->pid();
  ProcRef d = Open(k);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(Dpt(k, d, PT_ATTACH, tpid).error, Errno::kOk);
  ExpectStopped(Dwait(k, d, tpid), tpid, NB_SIGSTOP);
  SysReturn si = Dpt(k, d, PT_GET_SIGINFO, tpid, PTRACE_SIGINFO_SIZE);
  EXPECT_EQ(si.trace.stop_code, NB_SI_USER);
  EXPECT_EQ(si.trace.stop_pid, k.proc_pid(d));  // the sender is the debugger
  SysReturn li = Dpt(k, d, PT_LWPINFO, tpid, PTRACE_LWPINFO_SIZE);
  EXPECT_EQ(li.trace.lwpid, tpid);
  EXPECT_EQ(Dpt(k, d, PT_CONTINUE, tpid).error, Errno::kOk);
  t.go = true;
  SysReturn r = Dwait(k, d, -1);
  EXPECT_EQ(r.retval, tpid);
  EXPECT_EQ(r.wait.kind, WaitOut::kExited);
  EXPECT_EQ(r.wait.code, 0);
  EXPECT_EQ(Dwait(k, d, tpid).error, Errno::kECHILD);
  k.debugger_close(d);
  Finish(k, t.tp);
}

// N LWPs created and joined with both events on: exactly N CREATE and N EXIT stops,
// each exiting LID created once; PT_LWPNEXT enumerates the stopped process newest-first.
TEST(Debugger, LwpCreateAndExitEvents) {
  constexpr int kN = 6;
  Kernel k(test_config());
  std::atomic<bool> armed{false};
  auto tee = TestProc::start(k, [&](U& u) {
    U_EXPECT(u, u.spin_until([&] { return armed.load(); }, kSpinLimit));
    for (int i = 0; i < kN; i++) {
      lwpid_t c = 0;
      U_EXPECT_EQ(u, u.create([](U&) {}, 0, &c), Errno::kOk);
      U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
    }
  });
  const pid_t tpid = tee->pid();
  ProcRef d = Open(k);
  EXPECT_EQ(Dpt(k, d, PT_ATTACH, tpid).error, Errno::kOk);
  ExpectStopped(Dwait(k, d, tpid), tpid, NB_SIGSTOP);
  EXPECT_EQ(Dpt(k, d, PT_SET_EVENT_MASK, tpid, PTRACE_EVENT_SIZE,
                {.event_mask = PTRACE_LWP_CREATE | PTRACE_LWP_EXIT})
                .error,
            Errno::kOk);
  EXPECT_EQ(Dpt(k, d, PT_CONTINUE, tpid).error, Errno::kOk);
  armed = true;
  std::multiset<lwpid_t> created, exited;
  for (;;) {
    SysReturn r = Dwait(k, d, tpid);
    if (r.wait.kind != WaitOut::kStopped) {
      EXPECT_EQ(r.wait.kind, WaitOut::kExited);
      break;
    }
    EXPECT_EQ(r.wait.code, NB_SIGTRAP);
    SysReturn st = Dpt(k, d, PT_GET_PROCESS_STATE, tpid, PTRACE_STATE_SIZE);
    if (st.trace.report_event == PTRACE_LWP_CREATE) {
      created.insert(st.trace.pe_lwp);
      // Enumeration while stopped: the new LWP and the main one, then the end.
      SysReturn n1 = Dpt(k, d, PT_LWPNEXT, tpid, PTRACE_LWPSTATUS_SIZE);
      EXPECT_EQ(n1.trace.lwpid, st.trace.pe_lwp);
      SysReturn n2 = Dpt(k, d, PT_LWPNEXT, tpid, PTRACE_LWPSTATUS_SIZE, {.lwpid = n1.trace.lwpid});
      EXPECT_EQ(n2.trace.lwpid, tpid);
      SysReturn n3 = Dpt(k, d, PT_LWPNEXT, tpid, PTRACE_LWPSTATUS_SIZE, {.lwpid = tpid});
      EXPECT_EQ(n3.trace.lwpid, 0);
    } else {
      EXPECT_EQ(st.trace.report_event, PTRACE_LWP_EXIT);
      EXPECT_EQ(created.count(st.trace.pe_lwp), 1u);
      exited.insert(st.trace.pe_lwp);
    }
    EXPECT_EQ(Dpt(k, d, PT_CONTINUE, tpid).error, Errno::kOk);
  }
  EXPECT_EQ(created.size(), static_cast<size_t>(kN));
  EXPECT_EQ(exited.size(), static_cast<size_t>(kN));
  k.debugger_close(d);
  Finish(k, tee);
}

// While the tracee runs a blocking wait is pending (WNOHANG says 0); PT_STOP's stop
// runs the callback exactly once, and the next wait collects the SIGSTOP stop.
TEST(Debugger, PendingWaitWokenByStop) {
  Kernel k(test_config());
  Tracee t(k);
  const pid_t tpid = t.tp->pid();
  ProcRef d = Open(k);
  EXPECT_EQ(Dpt(k, d, PT_ATTACH, tpid).error, Errno::kOk);
  ExpectStopped(Dwait(k, d, tpid), tpid, NB_SIGSTOP);
  EXPECT_EQ(Dpt(k, d, PT_CONTINUE, tpid).error, Errno::kOk);
  SysReturn nohang = Dwait(k, d, tpid, NB_WNOHANG);
  EXPECT_EQ(nohang.error, Errno::kOk);
  EXPECT_EQ(nohang.retval, 0);
  Change c;
  DW w = k.debugger_wait(d, WaitArgs{.pid = tpid}, 7, c.callback());
  ASSERT_EQ(w.kind, DW::kPending);
  EXPECT_EQ(c.count(), 0);
  EXPECT_EQ(Dpt(k, d, PT_STOP, tpid).error, Errno::kOk);
  ASSERT_TRUE(c.await());
  EXPECT_FALSE(k.debugger_wait_cancel(d, 7));  // claimed by the notification
  ExpectStopped(Dwait(k, d, tpid), tpid, NB_SIGSTOP);
  EXPECT_EQ(c.count(), 1);
  EXPECT_EQ(Dpt(k, d, PT_DETACH, tpid).error, Errno::kOk);
  t.go = true;
  EXPECT_EQ(Dwait(k, d, tpid, NB_WNOHANG).error, Errno::kECHILD);  // detached
  k.debugger_close(d);
  Finish(k, t.tp);  // detached: it runs on and exits normally
}

// ECHILD without tracees, EINVAL for bad options or pid; a cancelled wait's callback
// never runs, even when the stop it waited for comes.
TEST(Debugger, EchildEinvalAndCancel) {
  Kernel k(test_config());
  Tracee t(k);
  const pid_t tpid = t.tp->pid();
  ProcRef d = Open(k);
  EXPECT_EQ(Dwait(k, d, -1).error, Errno::kECHILD);
  EXPECT_EQ(Dwait(k, d, tpid, NB_WNOHANG).error, Errno::kECHILD);
  EXPECT_EQ(Dwait(k, d, -1, 0x40).error, Errno::kEINVAL);
  EXPECT_EQ(Dwait(k, d, 0).error, Errno::kECHILD);   // no process groups: no such child
  EXPECT_EQ(Dwait(k, d, -2).error, Errno::kECHILD);
  EXPECT_EQ(Dpt(k, d, PT_CONTINUE, tpid).error, Errno::kEPERM);  // not traced
  EXPECT_EQ(Dpt(k, d, PT_ATTACH, kBogusLid).error, Errno::kESRCH);
  EXPECT_EQ(Dpt(k, d, PT_TRACE_ME, 0).error, Errno::kEPERM);
  EXPECT_EQ(Dpt(k, d, PT_ATTACH, tpid).error, Errno::kOk);
  ExpectStopped(Dwait(k, d, tpid), tpid, NB_SIGSTOP);
  EXPECT_EQ(Dpt(k, d, PT_CONTINUE, tpid).error, Errno::kOk);
  Change cancelled;
  ASSERT_EQ(k.debugger_wait(d, WaitArgs{.pid = tpid}, 11, cancelled.callback()).kind, DW::kPending);
  EXPECT_TRUE(k.debugger_wait_cancel(d, 11));
  EXPECT_FALSE(k.debugger_wait_cancel(d, 11));
  EXPECT_EQ(Dpt(k, d, PT_STOP, tpid).error, Errno::kOk);
  ExpectStopped(Dwait(k, d, tpid), tpid, NB_SIGSTOP);  // its notification ran by now
  EXPECT_EQ(cancelled.count(), 0);
  EXPECT_EQ(Dpt(k, d, PT_KILL, tpid).error, Errno::kOk);
  SysReturn r = Dwait(k, d, tpid);
  EXPECT_EQ(r.wait.kind, WaitOut::kSignaled);
  EXPECT_EQ(r.wait.code, NB_SIGKILL);
  k.debugger_close(d);
  Finish(k, t.tp, ExitStatus{.signaled = true, .code = NB_SIGKILL});
}

// The debugger's end kills every tracee (stopped or running), runs the pending wait's
// callback at once, and refuses later calls; the invariants hold throughout.
TEST(Debugger, CloseKillsTraceesAndEndsWaits) {
  Kernel k(test_config());
  Tracee a(k), b(k);
  ProcRef d = Open(k);
  EXPECT_EQ(Dpt(k, d, PT_ATTACH, a.tp->pid()).error, Errno::kOk);
  EXPECT_EQ(Dpt(k, d, PT_ATTACH, b.tp->pid()).error, Errno::kOk);
  ExpectStopped(Dwait(k, d, a.tp->pid()), a.tp->pid(), NB_SIGSTOP);
  ExpectStopped(Dwait(k, d, b.tp->pid()), b.tp->pid(), NB_SIGSTOP);
  EXPECT_EQ(Dpt(k, d, PT_CONTINUE, b.tp->pid()).error, Errno::kOk);  // b runs, a stays stopped
  Change c;
  ASSERT_EQ(k.debugger_wait(d, WaitArgs{.pid = -1}, 3, c.callback()).kind, DW::kPending);
  EXPECT_EQ(k.check_invariants(), "");
  k.debugger_close(d);
  EXPECT_EQ(c.count(), 1);  // run by the close itself, before it returned
  EXPECT_FALSE(k.debugger_wait_cancel(d, 3));
  EXPECT_EQ(k.debugger_wait(d, WaitArgs{.pid = -1}, 4, [] {}).kind, DW::kClosed);
  EXPECT_FALSE(k.debugger_ptrace(d, PtraceArgs{.request = PT_ATTACH, .pid = a.tp->pid()}));
  k.debugger_close(d);  // idempotent
  Finish(k, a.tp, ExitStatus{.signaled = true, .code = NB_SIGKILL});
  Finish(k, b.tp, ExitStatus{.signaled = true, .code = NB_SIGKILL});
}

// A debugger is invisible to the process table (ps, lookups, PT_ATTACH by a process) but
// holds its PID while open, so no process can be given it; the close releases it.
TEST(Debugger, PidHeldWhileOpenAndInvisible) {
  Kernel k(test_config());
  const int before = k.ids().in_use();
  ProcRef d = Open(k);
  const pid_t dpid = k.proc_pid(d);
  EXPECT_EQ(k.ids().in_use(), before + 1);
  EXPECT_EQ(k.proc_lookup(dpid), nullptr);
  EXPECT_FALSE(k.snapshot_proc(dpid).has_value());
  for (const auto& pi : k.snapshot_procs()) EXPECT_NE(pi.pid, dpid);
  auto tr = TestProc::start(k, [&](U& u) {
    U_EXPECT(u, Self(u) != dpid);
    U_EXPECT_EQ(u, u.sys(PtraceArgs{.request = PT_ATTACH, .pid = dpid}).error, Errno::kESRCH);
  });
  EXPECT_NE(tr->pid(), dpid);
  Finish(k, tr);
  EXPECT_EQ(k.check_invariants(), "");
  const int open = k.ids().in_use();  // tr's PID is held until its release
  k.debugger_close(d);
  EXPECT_EQ(k.ids().in_use(), open - 1);
  EXPECT_EQ(k.check_invariants(), "");
}

// A process traced by a debugger cannot be attached by a process, nor the reverse
// (EBUSY); the process tracer's tracee is not the debugger's (EBUSY for its requests).
TEST(Debugger, ProcessTracerAndDebuggerExcludeEachOther) {
  Kernel k(test_config());
  Tracee mine(k), theirs(k);
  ProcRef d = Open(k);
  EXPECT_EQ(Dpt(k, d, PT_ATTACH, mine.tp->pid()).error, Errno::kOk);
  std::promise<void> attached;
  std::atomic<bool> done{false};
  auto tr = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.sys(PtraceArgs{.request = PT_ATTACH, .pid = mine.tp->pid()}).error,
                Errno::kEBUSY);
    U_EXPECT_EQ(u, u.sys(PtraceArgs{.request = PT_ATTACH, .pid = theirs.tp->pid()}).error,
                Errno::kOk);
    attached.set_value();
    U_EXPECT(u, PollUntil(u, [&] { return done.load(); }));
  });
  ASSERT_EQ(attached.get_future().wait_for(kSpinLimit), std::future_status::ready);
  EXPECT_EQ(Dpt(k, d, PT_ATTACH, theirs.tp->pid()).error, Errno::kEBUSY);
  EXPECT_EQ(Dpt(k, d, PT_KILL, theirs.tp->pid()).error, Errno::kEBUSY);
  EXPECT_EQ(Dwait(k, d, theirs.tp->pid(), NB_WNOHANG).error, Errno::kECHILD);
  done = true;
  Finish(k, tr);  // the process tracer's exit kills `theirs`
  k.debugger_close(d);
  Finish(k, mine.tp, ExitStatus{.signaled = true, .code = NB_SIGKILL});
  Finish(k, theirs.tp, ExitStatus{.signaled = true, .code = NB_SIGKILL});
}

// A collected stop that never reached the debugger is collectable again (and wakes a
// pending wait); once the debugger acted on the tracee (PT_CONTINUE) there is nothing to
// give back.
TEST(Debugger, UndoneStopIsCollectableAgain) {
  Kernel k(test_config());
  Tracee t(k);
  const pid_t tpid = t.tp->pid();
  ProcRef d = Open(k);
  EXPECT_EQ(Dpt(k, d, PT_ATTACH, tpid).error, Errno::kOk);
  ExpectStopped(Dwait(k, d, tpid), tpid, NB_SIGSTOP);
  EXPECT_EQ(Dwait(k, d, tpid, NB_WNOHANG).retval, 0);  // collected
  Change c;
  ASSERT_EQ(k.debugger_wait(d, WaitArgs{.pid = -1}, 21, c.callback()).kind, DW::kPending);
  k.debugger_wait_undo(d, tpid);
  ASSERT_TRUE(c.await());
  ExpectStopped(Dwait(k, d, tpid, NB_WNOHANG), tpid, NB_SIGSTOP);
  EXPECT_EQ(Dpt(k, d, PT_CONTINUE, tpid).error, Errno::kOk);
  k.debugger_wait_undo(d, tpid);  // running: nothing to give back
  EXPECT_EQ(Dwait(k, d, tpid, NB_WNOHANG).retval, 0);
  t.go = true;
  EXPECT_EQ(Dwait(k, d, tpid).wait.kind, WaitOut::kExited);
  k.debugger_close(d);
  Finish(k, t.tp);
}

// An exit status that never reached the debugger is collectable again, once, and wakes a
// pending wait; a delivered one is gone (ECHILD), and so are the kept ones at the close.
TEST(Debugger, UndoneExitIsCollectableAgain) {
  Kernel k(test_config());
  Tracee t(k), u(k);
  const pid_t tpid = t.tp->pid(), upid = u.tp->pid();
  ProcRef d = Open(k);
  for (pid_t p : {tpid, upid}) {
    EXPECT_EQ(Dpt(k, d, PT_ATTACH, p).error, Errno::kOk);
    ExpectStopped(Dwait(k, d, p), p, NB_SIGSTOP);
    EXPECT_EQ(Dpt(k, d, PT_CONTINUE, p).error, Errno::kOk);
  }
  t.go = true;
  SysReturn r = Dwait(k, d, tpid);
  EXPECT_EQ(r.wait.kind, WaitOut::kExited);
  EXPECT_EQ(Dwait(k, d, tpid).error, Errno::kECHILD);
  Change c;
  ASSERT_EQ(k.debugger_wait(d, WaitArgs{.pid = -1}, 31, c.callback()).kind, DW::kPending);
  k.debugger_wait_undo(d, tpid);
  ASSERT_TRUE(c.await());
  EXPECT_EQ(k.check_invariants(), "");
  r = Dwait(k, d, -1, NB_WNOHANG);
  EXPECT_EQ(r.retval, tpid);
  EXPECT_EQ(r.wait.kind, WaitOut::kExited);
  EXPECT_EQ(r.wait.code, 0);
  k.debugger_wait_delivered(d, tpid);
  k.debugger_wait_undo(d, tpid);  // delivered: nothing to give back
  EXPECT_EQ(Dwait(k, d, tpid).error, Errno::kECHILD);
  EXPECT_EQ(Dwait(k, d, -1, NB_WNOHANG).retval, 0);  // u is still traced and running
  // u's exit, collected and neither delivered nor undone when the debugger closes.
  u.go = true;
  EXPECT_EQ(Dwait(k, d, upid).wait.kind, WaitOut::kExited);
  k.debugger_close(d);
  EXPECT_EQ(k.check_invariants(), "");
  Finish(k, t.tp);
  Finish(k, u.tp);
}

}  // namespace
}  // namespace lwpd::test
