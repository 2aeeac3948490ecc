#include "table.h"

#include <algorithm>
#include <cassert>
#include <cstdio>

#include "common/netbsd_abi.h"

namespace lwpd::lwpstat {

void Table::add(std::vector<std::string> row) {
  assert(row.size() == columns_.size());
  rows_.push_back(std::move(row));
}

std::string Table::line(const std::vector<std::string>& cells, const std::vector<size_t>& w) const {
  std::string out;
  for (size_t i = 0; i < cells.size(); i++) {
    const bool last = i + 1 == cells.size();
    const size_t pad = w[i] - cells[i].size();
    if (i > 0) out += "  ";
    if (columns_[i].align == Align::kRight) out.append(pad, ' ');
    out += cells[i];
    if (columns_[i].align == Align::kLeft && !last) out.append(pad, ' ');
  }
  // A left-aligned last column leaves no trailing blanks; trim the header's too.
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string Table::render(size_t width) const {
  std::vector<size_t> w(columns_.size());
  std::vector<std::string> header;
  for (size_t i = 0; i < columns_.size(); i++) {
    header.push_back(columns_[i].header);
    w[i] = columns_[i].header.size();
    for (const auto& r : rows_) w[i] = std::max(w[i], r[i].size());
  }
  std::string out;
  auto emit = [&](std::string l) {
    if (width > 0 && l.size() > width) l.resize(width);
    out += l;
    out += '\n';
  };
  emit(line(header, w));
  for (const auto& r : rows_) emit(line(r, w));
  return out;
}

std::string lwp_state_name(int state) {
  if (!v1::LwpState_IsValid(state)) return std::to_string(state);
  return v1::LwpState_Name(static_cast<v1::LwpState>(state));
}

std::string proc_state_name(int state) {
  if (!v1::ProcState_IsValid(state)) return std::to_string(state);
  return v1::ProcState_Name(static_cast<v1::ProcState>(state));
}

std::string policy_name(int policy) {
  switch (policy) {  // NetBSD's SCHED_OTHER / SCHED_FIFO / SCHED_RR
    case 0:
      return "OTHER";
    case 1:
      return "FIFO";
    case 2:
      return "RR";
    default:
      return std::to_string(policy);
  }
}

std::string lwp_flags(uint32_t flags) {
  namespace nb = ::lwpd::netbsd;
  static const struct {
    uint32_t bit;
    const char* name;
  } kBits[] = {
      {nb::LW_DBGSUSPEND, "LW_DBGSUSPEND"}, {nb::LW_WSUSPEND, "LW_WSUSPEND"},
      {nb::LW_WCORE, "LW_WCORE"},           {nb::LW_WEXIT, "LW_WEXIT"},
      {nb::LW_PENDSIG, "LW_PENDSIG"},       {nb::LW_CANCELLED, "LW_CANCELLED"},
      {nb::LW_WREBOOT, "LW_WREBOOT"},       {nb::LW_UNPARKED, "LW_UNPARKED"},
  };
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%08x", flags);
  std::string names;
  for (const auto& b : kBits)
    if (flags & b.bit) names += (names.empty() ? "" : "|") + std::string(b.name);
  return names.empty() ? hex : std::string(hex) + " (" + names + ")";
}

std::string cpu_text(int32_t cpu) {
  if (cpu == -1) return "-";
  if (cpu == -2) return "exit";
  return std::to_string(cpu);
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

std::string percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f",
                100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

std::string uptime_text(uint64_t ms) {
  const uint64_t s = ms / 1000, m = s / 60, h = m / 60, d = h / 24;
  char buf[32];
  if (d > 0)
    std::snprintf(buf, sizeof buf, "%llud%02lluh", (unsigned long long)d,
                  (unsigned long long)(h % 24));
  else if (h > 0)
    std::snprintf(buf, sizeof buf, "%lluh%02llum", (unsigned long long)h,
                  (unsigned long long)(m % 60));
  else if (m > 0)
    std::snprintf(buf, sizeof buf, "%llum%02llus", (unsigned long long)m,
                  (unsigned long long)(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  return buf;
}

}  // namespace lwpd::lwpstat
