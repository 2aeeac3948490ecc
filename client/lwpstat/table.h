// Aligned text tables, and the formatting of wire values that the tables of
// `lwpstat` subcommands and `lwpstat top` share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lwpstat.h"

namespace lwpd::lwpstat {

// Columns separated by two spaces, each as wide as its widest cell; numbers
// right-aligned, text left-aligned; the last column is not padded.
class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string header;
    Align align = Align::kRight;
  };

  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // A row has exactly one cell per column (asserted).
  void add(std::vector<std::string> row);
  size_t rows() const { return rows_.size(); }

  // Header line then the rows, each line newline-terminated and cut to `width`
  // characters (0 = no limit).
  std::string render(size_t width = 0) const;

 private:
  std::string line(const std::vector<std::string>& cells, const std::vector<size_t>& w) const;

  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// Enum names of the wire contract ("LSSLEEP", "SACTIVE"); a number if unknown.
std::string lwp_state_name(int state);
std::string proc_state_name(int state);
// Scheduling class: "OTHER", "FIFO", "RR", else the number.
std::string policy_name(int policy);
// l_flag as "0x..." followed by the known LW_* names: "0x10000000 (LW_UNPARKED)".
std::string lwp_flags(uint32_t flags);
// -1 (no vCPU yet / off CPU) as "-", -2 (lwpctl: exited) as "exit", else the number.
std::string cpu_text(int32_t cpu);
// Empty strings as "-" so table cells never vanish.
std::string or_dash(const std::string& s);
// part / whole as a percentage with one decimal ("12.5"); "-" when whole is 0.
std::string percent(uint64_t part, uint64_t whole);
// A duration in milliseconds as "1d02h", "3h04m", "5m06s" or "7.8s".
std::string uptime_text(uint64_t ms);

}  // namespace lwpd::lwpstat
