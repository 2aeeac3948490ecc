// The one-shot subcommands: take one snapshot, print it as a table (column
// headers are the proto field names in capitals) or, with --json, as the reply
// message itself.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "lwpstat.h"
#include "table.h"

namespace lwpd::lwpstat {

namespace {

using Align = Table::Align;
using google::protobuf::FieldDescriptor;

void out(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

int print_json(const google::protobuf::Message& m) {
  out(to_json(m));
  return kExitOk;
}

// The "key  value" listing of show and stats: keys padded to one width.
void print_pairs(const std::vector<std::pair<std::string, std::string>>& kv) {
  size_t w = 0;
  for (const auto& [k, v] : kv) w = std::max(w, k.size());
  for (const auto& [k, v] : kv)
    std::printf("%-*s  %s\n", static_cast<int>(w), k.c_str(), v.c_str());
}

// A singular scalar field in its readable form: enums by name, the rest as the
// JSON mapping would print them (without quotes).
std::string field_text(const google::protobuf::Message& m, const FieldDescriptor* f) {
  const auto* r = m.GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return std::to_string(r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return std::to_string(r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return std::to_string(r->GetUInt32(m, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return std::to_string(r->GetUInt64(m, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(m, f) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_STRING:
      return or_dash(r->GetString(m, f));
    case FieldDescriptor::CPPTYPE_ENUM:
      return r->GetEnum(m, f)->name();
    default:
      return "?";
  }
}

// Every singular scalar field of `m`, in .proto order, named as in the .proto.
// Walking the descriptor keeps `show` complete when the contract gains fields.
std::vector<std::pair<std::string, std::string>> all_fields(const google::protobuf::Message& m) {
  std::vector<std::pair<std::string, std::string>> kv;
  const auto* d = m.GetDescriptor();
  for (int i = 0; i < d->field_count(); i++) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated() || f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) continue;
    kv.emplace_back(f->name(), field_text(m, f));
  }
  return kv;
}

}  // namespace

int cmd_ps(Inspector& in, const GlobalOptions& g) {
  v1::ListProcsReply rep;
  if (Error e = in.list_procs(&rep)) return report(e);
  if (g.json) return print_json(rep);
  std::vector<const v1::ProcInfo*> procs;
  for (const auto& p : rep.procs()) procs.push_back(&p);
  std::sort(procs.begin(), procs.end(), [](auto* a, auto* b) { return a->pid() < b->pid(); });
  Table t({{"PID"},
           {"UID"},
           {"STATE", Align::kLeft},
           {"NLWPS"},
           {"NRLWPS"},
           {"NZLWPS"},
           {"NDLWPS"},
           {"NLWPWAIT"},
           {"TRANSPORT", Align::kLeft},
           {"COMM", Align::kLeft}});
  for (const auto* p : procs)
    t.add({std::to_string(p->pid()), std::to_string(p->uid()), proc_state_name(p->state()),
           std::to_string(p->nlwps()), std::to_string(p->nrlwps()), std::to_string(p->nzlwps()),
           std::to_string(p->ndlwps()), std::to_string(p->nlwpwait()), or_dash(p->transport()),
           or_dash(p->comm())});
  out(t.render());
  return kExitOk;
}

int cmd_lwps(Inspector& in, const GlobalOptions& g, int32_t pid) {
  v1::ListLwpsReply rep;
  if (Error e = in.list_lwps(pid, &rep)) return report(e);
  if (g.json) return print_json(rep);
  const v1::ProcInfo& p = rep.proc();
  std::printf("pid %d  comm %s  state %s  nlwps %d  nrlwps %d\n", p.pid(),
              or_dash(p.comm()).c_str(), proc_state_name(p.state()).c_str(), p.nlwps(), p.nrlwps());
  std::vector<const v1::LwpInfo*> lwps;
  for (const auto& l : p.lwps()) lwps.push_back(&l);
  std::sort(lwps.begin(), lwps.end(), [](auto* a, auto* b) { return a->lid() < b->lid(); });
  Table t({{"LID"},
           {"STATE", Align::kLeft},
           {"CPU"},
           {"PRI"},
           {"CLASS", Align::kLeft},
           {"SWITCHES"},
           {"LC_PCTR"},
           {"WCHAN", Align::kLeft},
           {"NAME", Align::kLeft}});
  for (const auto* l : lwps)
    t.add({std::to_string(l->lid()), lwp_state_name(l->state()), cpu_text(l->cpu()),
           std::to_string(l->priority()), policy_name(l->policy()), std::to_string(l->switches()),
           std::to_string(l->lc_pctr()), or_dash(l->wchan()), or_dash(l->name())});
  out(t.render());
  return kExitOk;
}

int cmd_cpus(Inspector& in, const GlobalOptions& g) {
  v1::ListCpusReply rep;
  if (Error e = in.list_cpus(&rep)) return report(e);
  if (g.json) return print_json(rep);
  Table t({{"CPU"},
           {"HOST"},
           {"PID"},
           {"LID"},
           {"PRI"},
           {"RUNQ"},
           {"SWITCHES"},
           {"STEALS"},
           {"PREEMPTIONS"},
           {"IDLE%"}});
  for (const auto& c : rep.cpus()) {
    const bool idle = c.cur_pid() == 0;
    t.add({std::to_string(c.index()), cpu_text(c.host_cpu()),
           idle ? "-" : std::to_string(c.cur_pid()), idle ? "-" : std::to_string(c.cur_lid()),
           idle ? "-" : std::to_string(c.cur_priority()), std::to_string(c.runq_len()),
           std::to_string(c.switches()), std::to_string(c.steals()),
           std::to_string(c.preemptions()), percent(c.idle_ns(), c.busy_ns() + c.idle_ns())});
  }
  out(t.render());
  return kExitOk;
}

int cmd_show(Inspector& in, const GlobalOptions& g, int32_t pid, int32_t lid) {
  v1::ListLwpsReply rep;
  if (Error e = in.list_lwps(pid, &rep)) return report(e);
  const auto& lwps = rep.proc().lwps();
  auto it = std::find_if(lwps.begin(), lwps.end(), [lid](const auto& l) { return l.lid() == lid; });
  if (it == lwps.end())
    return report(
        {kExitFailed, "no LWP " + std::to_string(lid) + " in process " + std::to_string(pid)});
  if (g.json) return print_json(*it);
  auto kv = all_fields(*it);
  for (auto& [k, v] : kv) {  // raw values stay first, as in --json
    if (k == "flags") v = lwp_flags(it->flags());
    if (k == "policy") v += " (" + policy_name(it->policy()) + ")";
    if (k == "lc_curcpu" && it->lc_curcpu() < 0)
      v += it->lc_curcpu() == -2 ? " (LWPCTL_CPU_EXITED)" : " (LWPCTL_CPU_NONE)";
  }
  kv.insert(kv.begin(), {{"pid", std::to_string(pid)}, {"comm", or_dash(rep.proc().comm())}});
  print_pairs(kv);
  return kExitOk;
}

int cmd_stats(Inspector& in, const GlobalOptions& g) {
  v1::StatsReply rep;
  if (Error e = in.stats(&rep)) return report(e);
  if (g.json) return print_json(rep);
  auto kv = all_fields(rep);
  for (auto& [k, v] : kv)
    if (k == "uptime_ms") v += " (" + uptime_text(rep.uptime_ms()) + ")";
  // What each uid holds, against the per-uid limits listed above (root is exempt).
  for (const auto& u : rep.uids())
    kv.emplace_back("uid " + std::to_string(u.uid()), std::to_string(u.nprocs()) + " procs, " +
                                                          std::to_string(u.nlwps()) + " lwps");
  print_pairs(kv);
  return kExitOk;
}

int cmd_health(Inspector& in, const GlobalOptions& g) {
  using Response = grpc::health::v1::HealthCheckResponse;
  Response rep;
  if (Error e = in.health(&rep)) return report(e);
  const bool serving = rep.status() == Response::SERVING;
  if (g.json) {
    out(to_json(rep));
  } else if (serving) {
    std::printf("SERVING\n");
  } else {
    // Not serving: the one line goes to stderr like every other failure.
    return report({kExitFailed, "lwpd at " + in.endpoint() + " is " +
                                    Response::ServingStatus_Name(rep.status())});
  }
  return serving ? kExitOk : kExitFailed;
}

}  // namespace lwpd::lwpstat
