// lwpstat watch: the daemon's live event stream, one line per event, flushed at once so
// a pipe sees each event as it happens.
//
//   human   a header once the watch is live, then aligned columns:
//           SEQ  TIME  PID  LID  EVENT  FROM  TO  CPU   (TIME: seconds since the watch
//           started; FROM/TO: LWP states; a drop marker reads "DROPPED  N events lost")
//   --json  one WatchEvent object per line, the WATCH_SUBSCRIBED marker first
// `watch PID` ends (exit 0) after that process's exit event; -n N after N lines.
#include <cinttypes>
#include <cstdio>
#include <string>

#include "lwpstat.h"
#include "table.h"

namespace lwpd::lwpstat {

namespace {

const char* event_name(v1::WatchEventKind k) {
  switch (k) {
    case v1::WATCH_SUBSCRIBED:
      return "SUBSCRIBED";
    case v1::WATCH_LWP_CREATE:
      return "CREATE";
    case v1::WATCH_LWP_STATE:
      return "STATE";
    case v1::WATCH_LWP_FREE:
      return "FREE";
    case v1::WATCH_PROC_STOP:
      return "STOP";
    case v1::WATCH_PROC_CONT:
      return "CONT";
    case v1::WATCH_PROC_EXIT:
      return "EXIT";
    case v1::WATCH_DROPPED:
      return "DROPPED";
    default:
      return "?";
  }
}

constexpr const char* kHeader = "%10s  %12s  %6s  %6s  %-8s  %-11s  %-11s  %s\n";

void print_human(const v1::WatchEvent& e, int64_t t0) {
  if (e.kind() == v1::WATCH_DROPPED) {
    std::printf("%10s  %12s  %6s  %6s  %-8s  %" PRIu64 " events lost\n", "-", "-", "-", "-",
                "DROPPED", e.dropped());
    return;
  }
  char when[32];
  std::snprintf(when, sizeof when, "%.6f", static_cast<double>(e.time_ns() - t0) / 1e9);
  const bool lwp = e.lid() != 0;
  const bool has_from = e.kind() == v1::WATCH_LWP_STATE || e.kind() == v1::WATCH_LWP_FREE;
  const bool has_to = e.kind() == v1::WATCH_LWP_STATE || e.kind() == v1::WATCH_LWP_CREATE;
  std::printf(kHeader, std::to_string(e.seq()).c_str(), when, std::to_string(e.pid()).c_str(),
              lwp ? std::to_string(e.lid()).c_str() : "-", event_name(e.kind()),
              has_from ? lwp_state_name(e.from()).c_str() : "-",
              has_to ? lwp_state_name(e.to()).c_str() : "-", cpu_text(e.cpu()).c_str());
}

}  // namespace

int cmd_watch(Inspector& in, const GlobalOptions& g, const WatchOptions& w) {
  v1::WatchRequest req;
  req.set_pid(w.pid);
  req.set_buffer(w.buffer);
  int64_t lines = 0, t0 = 0;
  Error err = in.watch(req, [&](const v1::WatchReply& rep) {
    for (const auto& e : rep.events()) {
      if (g.json) {
        std::fputs(to_json_line(e).c_str(), stdout);
      } else if (e.kind() == v1::WATCH_SUBSCRIBED) {
        t0 = e.time_ns();
        std::printf(kHeader, "SEQ", "TIME", "PID", "LID", "EVENT", "FROM", "TO", "CPU");
      } else {
        print_human(e, t0);
      }
      const bool gone = w.pid != 0 && e.kind() == v1::WATCH_PROC_EXIT;
      if (gone || (e.kind() != v1::WATCH_SUBSCRIBED && w.count > 0 && ++lines >= w.count)) {
        std::fflush(stdout);
        return false;
      }
    }
    std::fflush(stdout);
    return true;
  });
  if (err) return report(err);
  return kExitOk;
}

}  // namespace lwpd::lwpstat
