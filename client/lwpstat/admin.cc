// lwpstat stop|cont|kill PID, suspend|resume PID LID: the Admin service. The admin token
// is read from --admin-token-file, else $LWPD_ADMIN_TOKEN_FILE, else admin.token in the
// directory of the endpoint's unix socket (where lwpd writes it by default).
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "lwpstat.h"
#include "table.h"

namespace lwpd::lwpstat {

namespace {

// The token file to use, or an error when none can be derived (a TCP endpoint).
Error token_path(const std::string& endpoint, const AdminOptions& a, std::string* path) {
  if (!a.token_file.empty()) {
    *path = a.token_file;
    return Error::none();
  }
  const char* env = std::getenv("LWPD_ADMIN_TOKEN_FILE");
  if (env != nullptr && *env != '\0') {
    *path = env;
    return Error::none();
  }
  std::string sock;
  if (endpoint.rfind("unix://", 0) == 0)
    sock = endpoint.substr(7);
  else if (endpoint.rfind("unix:", 0) == 0)
    sock = endpoint.substr(5);
  const auto slash = sock.rfind('/');
  if (sock.empty() || slash == std::string::npos)
    return {kExitFailed, "no admin token file for endpoint " + endpoint +
                             ": give --admin-token-file or set LWPD_ADMIN_TOKEN_FILE"};
  *path = sock.substr(0, slash + 1) + "admin.token";
  return Error::none();
}

Error read_token(const std::string& path, std::string* token) {
  std::ifstream f(path);
  if (!f) return {kExitFailed, "cannot read admin token " + path + ": " + std::strerror(errno)};
  std::getline(f, *token);
  if (token->empty()) return {kExitFailed, "admin token " + path + " is empty"};
  return Error::none();
}

}  // namespace

Error admin_token(const std::string& endpoint, const AdminOptions& a, std::string* token) {
  std::string path;
  if (Error e = token_path(endpoint, a, &path)) return e;
  return read_token(path, token);
}

namespace {

Error call(Inspector& in, const std::string& token, const std::string& what, int32_t pid,
           int32_t lid, v1::AdminReply* rep) {
  if (what == "stop") return in.signal_proc(token, pid, v1::ADMIN_SIGSTOP, rep);
  if (what == "cont") return in.signal_proc(token, pid, v1::ADMIN_SIGCONT, rep);
  if (what == "kill") return in.signal_proc(token, pid, v1::ADMIN_SIGKILL, rep);
  if (what == "suspend") return in.suspend_lwp(token, pid, lid, rep);
  return in.resume_lwp(token, pid, lid, rep);
}

}  // namespace

int cmd_admin(Inspector& in, const GlobalOptions& g, const AdminOptions& a, const std::string& what,
              int32_t pid, int32_t lid) {
  std::string token;
  if (Error e = admin_token(in.endpoint(), a, &token)) return report(e);
  v1::AdminReply rep;
  if (Error e = call(in, token, what, pid, lid, &rep)) return report(e);
  const bool lwp = what == "suspend" || what == "resume";
  const std::string target =
      "pid " + std::to_string(pid) + (lwp ? " lid " + std::to_string(lid) : std::string());
  if (rep.error() != v1::ERRNO_OK) {
    // Still one line on stderr; --json also prints the reply for scripts.
    if (g.json) std::fputs(to_json(rep).c_str(), stdout);
    return report(
        {kExitFailed, what + " " + target + ": " + v1::Errno_Name(rep.error()).substr(6)});
  }
  if (g.json) {
    std::fputs(to_json(rep).c_str(), stdout);
  } else if (lwp) {
    std::printf("%s: %s (process %s)\n", target.c_str(), lwp_state_name(rep.state()).c_str(),
                proc_state_name(rep.proc_state()).c_str());
  } else {
    std::printf("%s: %s sent (process %s)\n", target.c_str(),
                what == "stop"   ? "SIGSTOP"
                : what == "cont" ? "SIGCONT"
                                 : "SIGKILL",
                proc_state_name(rep.proc_state()).c_str());
  }
  return kExitOk;
}

}  // namespace lwpd::lwpstat
