// lwpstat top: a refreshing view of the vCPUs and the busiest LWPs.
//
// Each frame is one snapshot (Stats, ListCpus, ListProcs, ListLwps per process)
// compared with the previous one: vCPU counters become rates and BUSY% over the
// interval, LWP switch counts become rates. Between frames the vCPUs are sampled
// every kSamplePeriod (ListCpus is cheap), and an LWP's %CPU is the share of
// those samples in which some vCPU was running it — an estimate of its ONPROC
// time, which the wire contract does not carry. LWPs are ranked by %CPU, then by
// switch rate.
//
// The screen is redrawn in place with ANSI escapes (home, erase line, erase
// below): no alternate screen, so the last frame stays visible after `q` or
// --iterations, and no ncurses dependency. When stdout is not a terminal, or with
// --batch, frames are printed one after another as plain text.
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lwpstat.h"
#include "table.h"

namespace lwpd::lwpstat {

namespace {

using Clock = std::chrono::steady_clock;
using Align = Table::Align;
constexpr auto kSamplePeriod = std::chrono::milliseconds(50);

// Set by SIGINT/SIGTERM; lock-free, so a handler may store it. The handler is
// installed without SA_RESTART, so the store also interrupts the poll() below.
std::atomic<bool> g_quit{false};
static_assert(std::atomic<bool>::is_always_lock_free);
extern "C" void on_quit_signal(int) { g_quit.store(true, std::memory_order_relaxed); }

// The terminal while top runs: keys without Enter and without echo when stdin is a
// terminal, the cursor hidden when drawing in place. Restored on destruction.
class Terminal {
 public:
  explicit Terminal(bool interactive);
  ~Terminal();
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  bool interactive() const { return interactive_; }
  // Waits up to `d`; true if the user asked to quit (q, Q, or a signal).
  bool wait_for_quit(Clock::duration d);
  // Rows and columns of stdout's terminal (24x80 if unknown).
  void size(size_t* rows, size_t* cols) const;

 private:
  bool interactive_;
  bool raw_ = false;
  termios saved_{};
  struct sigaction old_int_ {
  }, old_term_{};
};

Terminal::Terminal(bool interactive) : interactive_(interactive) {
  struct sigaction sa {};
  sa.sa_handler = on_quit_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: see g_quit
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
  if (!interactive_) return;
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_) == 0) {
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);  // ISIG kept: Ctrl-C still works
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    raw_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  std::fputs("\x1b[?25l", stdout);  // hide the cursor
  std::fflush(stdout);
}

Terminal::~Terminal() {
  if (interactive_) {
    std::fputs("\x1b[?25h", stdout);
    std::fflush(stdout);
  }
  if (raw_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

bool Terminal::wait_for_quit(Clock::duration d) {
  const auto end = Clock::now() + d;
  while (!g_quit.load(std::memory_order_relaxed)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{STDIN_FILENO, POLLIN, 0};
    // Without raw keys there is nothing to read: poll() just sleeps.
    int n = poll(&pfd, raw_ ? 1 : 0, static_cast<int>(left.count()));
    if (n <= 0 || (pfd.revents & POLLIN) == 0) continue;  // timeout, EINTR
    char buf[64];
    ssize_t got = read(STDIN_FILENO, buf, sizeof buf);
    for (ssize_t i = 0; i < got; i++)
      if (buf[i] == 'q' || buf[i] == 'Q') return true;
  }
  return true;
}

void Terminal::size(size_t* rows, size_t* cols) const {
  winsize ws{};
  const bool ok = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0;
  *rows = ok ? ws.ws_row : 24;
  *cols = ok ? ws.ws_col : 80;
}

// ---- data -------------------------------------------------------------------------

struct Snapshot {
  Clock::time_point at;
  v1::StatsReply stats;
  v1::ListCpusReply cpus;
  std::vector<v1::ProcInfo> procs;  // each with its LWPs
};

uint64_t lwp_key(int32_t pid, int32_t lid) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(pid)) << 32) | static_cast<uint32_t>(lid);
}

// How often each LWP was seen on a vCPU between two frames.
struct OnCpuSamples {
  int samples = 0;
  std::map<uint64_t, int> hits;

  void add(const v1::ListCpusReply& cpus) {
    samples++;
    for (const auto& c : cpus.cpus())
      if (c.cur_pid() != 0) hits[lwp_key(c.cur_pid(), c.cur_lid())]++;
  }
};

Error take_snapshot(Inspector& in, Snapshot* s) {
  s->at = Clock::now();
  if (Error e = in.stats(&s->stats)) return e;
  if (Error e = in.list_cpus(&s->cpus)) return e;
  v1::ListProcsReply procs;
  if (Error e = in.list_procs(&procs)) return e;
  s->procs.clear();
  for (const auto& p : procs.procs()) {
    v1::ListLwpsReply rep;
    Error e = in.list_lwps(p.pid(), &rep);
    if (e.code == kExitUnreachable) return e;
    if (!e) s->procs.push_back(std::move(*rep.mutable_proc()));
    // else the process exited since ListProcs: leave it out of this frame.
  }
  return Error::none();
}

// Samples the vCPUs until `until`, watching for quit. *quit on q or a signal.
Error sample_until(Inspector& in, Terminal& term, Clock::time_point until, OnCpuSamples* s,
                   bool* quit) {
  *quit = false;
  while (Clock::now() < until) {
    v1::ListCpusReply cpus;
    if (Error e = in.list_cpus(&cpus)) return e;
    s->add(cpus);
    auto left = until - Clock::now();
    if (term.wait_for_quit(std::min<Clock::duration>(left, kSamplePeriod))) {
      *quit = true;
      return Error::none();
    }
  }
  return Error::none();
}

// ---- drawing ----------------------------------------------------------------------

// Per-second rate of a counter between two snapshots ("-" without a previous one).
std::string rate(uint64_t now, std::optional<uint64_t> before, double seconds) {
  if (!before || seconds <= 0 || now < *before) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", static_cast<double>(now - *before) / seconds);
  return buf;
}

std::vector<std::string> header(const Inspector& in, const Snapshot& s, const Snapshot* prev,
                                const TopOptions& opt) {
  const double secs = prev ? std::chrono::duration<double>(s.at - prev->at).count() : 0;
  const auto& st = s.stats;
  std::optional<uint64_t> before;
  if (prev) before = prev->stats.syscalls();
  char l1[512], l2[512];
  std::snprintf(l1, sizeof l1, "lwpstat top - %s - %s - up %s", in.endpoint().c_str(),
                st.version().c_str(), uptime_text(st.uptime_ms()).c_str());
  std::snprintf(l2, sizeof l2,
                "procs %d  lwps %d  vcpus %d  syscalls %llu (%s/s)  rss %.1f MiB  "
                "refresh %d ms%s",
                st.nprocs(), st.nlwps(), st.ncpus(), static_cast<unsigned long long>(st.syscalls()),
                rate(st.syscalls(), before, secs).c_str(),
                static_cast<double>(st.rss_bytes()) / (1024.0 * 1024.0), opt.interval_ms,
                opt.batch ? "" : "  (q quits)");
  return {l1, l2, ""};
}

Table cpu_table(const Snapshot& s, const Snapshot* prev) {
  const double secs = prev ? std::chrono::duration<double>(s.at - prev->at).count() : 0;
  Table t({{"VCPU"},
           {"PID"},
           {"LID"},
           {"PRI"},
           {"RUNQ"},
           {"SW/s"},
           {"STEALS/s"},
           {"PREEMPT/s"},
           {"BUSY%"}});
  for (int i = 0; i < s.cpus.cpus_size(); i++) {
    const auto& c = s.cpus.cpus(i);
    const v1::CpuInfo* p = prev && i < prev->cpus.cpus_size() ? &prev->cpus.cpus(i) : nullptr;
    // BUSY% over the interval; since the daemon started on the first frame.
    uint64_t busy = c.busy_ns() - (p ? p->busy_ns() : 0);
    uint64_t idle = c.idle_ns() - (p ? p->idle_ns() : 0);
    const bool on = c.cur_pid() != 0;
    t.add({std::to_string(c.index()), on ? std::to_string(c.cur_pid()) : "-",
           on ? std::to_string(c.cur_lid()) : "-", on ? std::to_string(c.cur_priority()) : "-",
           std::to_string(c.runq_len()),
           rate(c.switches(), p ? std::optional(p->switches()) : std::nullopt, secs),
           rate(c.steals(), p ? std::optional(p->steals()) : std::nullopt, secs),
           rate(c.preemptions(), p ? std::optional(p->preemptions()) : std::nullopt, secs),
           percent(busy, busy + idle)});
  }
  return t;
}

struct LwpRow {
  const v1::ProcInfo* proc;
  const v1::LwpInfo* lwp;
  const v1::LwpInfo* before;  // the same LWP in the previous snapshot, if any
  int hits;
};

// The LWPs of the snapshot, busiest first: %CPU, then switch rate, then ONPROC,
// then by PID and LID so that quiet LWPs keep their places between frames.
std::vector<LwpRow> ranked_lwps(const Snapshot& s, const Snapshot* prev,
                                const OnCpuSamples& samples) {
  std::map<uint64_t, const v1::LwpInfo*> old;
  if (prev)
    for (const auto& p : prev->procs)
      for (const auto& l : p.lwps()) old[lwp_key(p.pid(), l.lid())] = &l;
  std::vector<LwpRow> rows;
  for (const auto& p : s.procs)
    for (const auto& l : p.lwps()) {
      const uint64_t k = lwp_key(p.pid(), l.lid());
      auto o = old.find(k);
      auto h = samples.hits.find(k);
      rows.push_back(
          {&p, &l, o == old.end() ? nullptr : o->second, h == samples.hits.end() ? 0 : h->second});
    }
  // A LID reused by a new LWP since the last frame may have fewer switches: no delta.
  auto dsw = [](const LwpRow& r) -> uint64_t {
    if (!r.before || r.lwp->switches() < r.before->switches()) return 0;
    return r.lwp->switches() - r.before->switches();
  };
  std::sort(rows.begin(), rows.end(), [&](const LwpRow& a, const LwpRow& b) {
    if (a.hits != b.hits) return a.hits > b.hits;
    if (dsw(a) != dsw(b)) return dsw(a) > dsw(b);
    const bool a_on = a.lwp->state() == v1::LSONPROC, b_on = b.lwp->state() == v1::LSONPROC;
    if (a_on != b_on) return a_on;
    if (a.proc->pid() != b.proc->pid()) return a.proc->pid() < b.proc->pid();
    return a.lwp->lid() < b.lwp->lid();
  });
  return rows;
}

Table lwp_table(const Snapshot& s, const Snapshot* prev, const OnCpuSamples& samples,
                size_t max_rows) {
  const double secs = prev ? std::chrono::duration<double>(s.at - prev->at).count() : 0;
  Table t({{"PID"},
           {"LID"},
           {"%CPU"},
           {"STATE", Align::kLeft},
           {"CPU"},
           {"PRI"},
           {"CLASS", Align::kLeft},
           {"SW/s"},
           {"LC_PCTR"},
           {"WCHAN", Align::kLeft},
           {"COMM", Align::kLeft},
           {"NAME", Align::kLeft}});
  for (const LwpRow& r : ranked_lwps(s, prev, samples)) {
    if (t.rows() >= max_rows) break;
    const v1::LwpInfo& l = *r.lwp;
    t.add({std::to_string(r.proc->pid()), std::to_string(l.lid()),
           samples.samples ? percent(static_cast<uint64_t>(r.hits), samples.samples) : "-",
           lwp_state_name(l.state()), cpu_text(l.cpu()), std::to_string(l.priority()),
           policy_name(l.policy()),
           rate(l.switches(), r.before ? std::optional(r.before->switches()) : std::nullopt, secs),
           std::to_string(l.lc_pctr()), or_dash(l.wchan()), or_dash(r.proc->comm()),
           or_dash(l.name())});
  }
  return t;
}

// Splits rendered table text into lines (without their newlines).
void append_lines(std::vector<std::string>* out, const std::string& text) {
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    out->push_back(text.substr(start, nl - start));
}

void draw(const Terminal& term, const std::vector<std::string>& lines, size_t cols) {
  std::string out;
  if (term.interactive()) out += "\x1b[H";  // home; each line then erases its own tail
  for (const auto& l : lines) {
    out += cols > 0 && l.size() > cols ? l.substr(0, cols) : l;
    out += term.interactive() ? "\x1b[K\n" : "\n";
  }
  out += term.interactive() ? "\x1b[J" : "\n";  // erase what an older, longer frame left
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

std::vector<std::string> frame(const Inspector& in, const Terminal& term, const Snapshot& s,
                               const Snapshot* prev, const OnCpuSamples& samples,
                               const TopOptions& opt, size_t rows) {
  std::vector<std::string> lines = header(in, s, prev, opt);
  append_lines(&lines, cpu_table(s, prev).render());
  lines.push_back("");
  size_t max_lwps = opt.lwp_rows > 0 ? static_cast<size_t>(opt.lwp_rows) : SIZE_MAX;
  if (term.interactive()) {
    // Fill the screen but never its last row: a newline there would scroll.
    const size_t used = lines.size() + 1 /* LWP header */ + 1;
    max_lwps = std::min(max_lwps, rows > used ? rows - used : 0);
  }
  append_lines(&lines, lwp_table(s, prev, samples, max_lwps).render());
  return lines;
}

Error run_top(Inspector& in, Terminal& term, const TopOptions& opt) {
  Snapshot prev, cur;
  bool have_prev = false;
  OnCpuSamples samples;
  Clock::time_point next;
  for (int n = 0; opt.iterations == 0 || n < opt.iterations; n++) {
    if (n > 0) {  // the first frame is drawn at once, like top(1)
      bool quit = false;
      if (Error e = sample_until(in, term, next, &samples, &quit)) return e;
      if (quit) break;
    }
    if (Error e = take_snapshot(in, &cur)) return e;
    size_t rows = 0, cols = 0;
    term.size(&rows, &cols);
    draw(term, frame(in, term, cur, have_prev ? &prev : nullptr, samples, opt, rows),
         term.interactive() ? cols : 0);
    std::swap(prev, cur);
    have_prev = true;
    samples = OnCpuSamples{};
    next = Clock::now() + std::chrono::milliseconds(opt.interval_ms);
  }
  return Error::none();
}

}  // namespace

int cmd_top(Inspector& in, const TopOptions& opt) {
  Error e;
  {
    TopOptions o = opt;
    o.batch = opt.batch || !isatty(STDOUT_FILENO);
    Terminal term(!o.batch);
    e = run_top(in, term, o);
  }  // the terminal is restored before an error is printed
  return e ? report(e) : kExitOk;
}

}  // namespace lwpd::lwpstat
