#include "daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <grpcpp/generic/generic_stub.h>

#include "server/wire.h"

#ifndef LWPD_BINARY
#error "LWPD_BINARY must name the lwpd executable"
#endif

namespace lwpd::test {

using namespace std::chrono_literals;

DaemonProcess::DaemonProcess(int cpus, std::vector<std::string> extra, int nofile) {
  char tmpl[] = "/tmp/lwpd-e2e-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  ::chmod(dir_.c_str(), 0755);
  runtime_dir_ = dir_ + "/run";
  // A test may name the runtime directory itself (e.g. to share one between daemons).
  for (size_t i = 0; i + 1 < extra.size(); i++)
    if (extra[i] == "--runtime-dir") {
      runtime_dir_ = extra[i + 1];
      extra.erase(extra.begin() + i, extra.begin() + i + 2);
      break;
    }
  address_ = "unix://" + dir_ + "/lwpd.sock";
  std::vector<std::string> args = {LWPD_BINARY,          "--listen",    address_,
                                   "--runtime-dir",      runtime_dir_,  "--cpus",
                                   std::to_string(cpus), "--log-level", "debug"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::string log = dir_ + "/lwpd.log";
  pid_ = ::fork();
  if (pid_ == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) ::dup2(fd, 2);
    ::umask(0);
    if (nofile > 0) {
      rlimit rl{static_cast<rlim_t>(nofile), static_cast<rlim_t>(nofile)};
      ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  // Ready when the health service answers SERVING (bounded; a TSan build is slow).
  auto end = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < end) {
    if (serving()) {
      ready_ = true;
      break;
    }
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (!dir_.empty() && ::getenv("LWPD_E2E_KEEP") == nullptr) {
    std::string cmd = "rm -rf '" + dir_ + "'";
    if (std::system(cmd.c_str()) != 0) {
    }
  }
}

std::shared_ptr<grpc::Channel> DaemonProcess::channel() const {
  grpc::ChannelArguments args;
  // A fresh connection per channel: tests that count connections or kill
  // clients must not share a subchannel.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
}

std::optional<int> DaemonProcess::terminate(std::chrono::milliseconds limit) {
  if (pid_ <= 0) return std::nullopt;
  ::kill(pid_, SIGTERM);
  auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return st;
    }
    if (std::chrono::steady_clock::now() > end) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

std::string DaemonProcess::log() const {
  std::ifstream f(dir_ + "/lwpd.log");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool DaemonProcess::serving() const {
  auto ch = channel();
  grpc::GenericStub stub(ch);
  grpc::ClientContext ctx;
  // Generous: under TSan with parallel tests a healthy daemon has answered in over 500 ms;
  // a hung one never answers.
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  // HealthCheckRequest{service: ""} is the empty message; SERVING is
  // HealthCheckResponse{status: 1} = bytes 08 01.
  grpc::Slice empty;
  grpc::ByteBuffer req(&empty, 1);
  grpc::ByteBuffer resp;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &req, &resp,
                 [&](grpc::Status st) { done.set_value(st); });
  grpc::Status st = done.get_future().get();
  if (!st.ok()) return false;
  std::vector<grpc::Slice> slices;
  if (!resp.Dump(&slices).ok()) return false;
  std::string bytes;
  for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes == std::string("\x08\x01", 2);
}

std::unique_ptr<grpc::ClientContext> call_ctx(const std::string& token,
                                              std::chrono::milliseconds limit) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) ctx->AddMetadata("lwpd-token", token);
  ctx->set_deadline(std::chrono::system_clock::now() + limit);
  return ctx;
}

v1::Syscall sys(const emul::SysArgs& a) { return server::syscall_to_wire(a); }

// ---- Proc ----------------------------------------------------------------------------

Proc::Proc(std::shared_ptr<grpc::Channel> ch, const std::string& comm)
    : stub_(v1::Kernel::NewStub(ch)) {
  session_ = stub_->Session(&session_ctx_);
  v1::SessionRequest req;
  req.mutable_attach()->set_comm(comm);
  req.mutable_attach()->set_host_pid(::getpid());
  if (!session_->Write(req)) return;
  v1::SessionEvent ev;
  if (!session_->Read(&ev) || !ev.has_attached()) return;
  attached_ = ev.attached();
  ok_ = true;
}

Proc::~Proc() {
  if (session_) {
    session_ctx_.TryCancel();
    session_->Finish().IgnoreError();
  }
}

grpc::Status Proc::start(int32_t lid, v1::SyscallReturn* out) {
  auto ctx = call_ctx(token());
  v1::LwpRef ref;
  ref.set_lid(lid);
  return stub_->Start(ctx.get(), ref, out);
}

grpc::Status Proc::call(int32_t lid, const emul::SysArgs& a, v1::SyscallReturn* out,
                        std::chrono::milliseconds limit) {
  auto ctx = call_ctx(token(), limit);
  v1::LwpCall c;
  c.set_lid(lid);
  *c.mutable_syscall() = sys(a);
  return stub_->Call(ctx.get(), c, out);
}

std::optional<v1::ExitStatus> Proc::await_exit(grpc::Status* final_status) {
  std::optional<v1::ExitStatus> st;
  v1::SessionEvent ev;
  while (session_->Read(&ev))
    if (ev.has_proc_exited()) st = ev.proc_exited();
  session_->WritesDone();
  *final_status = session_->Finish();
  session_.reset();
  return st;
}

}  // namespace lwpd::test
