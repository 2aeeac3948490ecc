// End-to-end test support: a real lwpd child process on its own socket and
// runtime directory, and thin synchronous clients built on the generated stubs.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "emul/syscalls.h"
#include "lwpd/v1/kernel.grpc.pb.h"

namespace lwpd::test {

namespace v1 = ::lwpd::v1;

// A running lwpd (started by the constructor, SIGKILLed by the destructor if
// still alive). Its stderr goes to <dir>/lwpd.log. Its directory is searchable by every uid
// and it runs with umask 0, so clients of other uids (setpriv) can reach its socket.
// `nofile` > 0: the daemon's RLIMIT_NOFILE (soft and hard).
class DaemonProcess {
 public:
  // `extra` arguments are passed on; a "--runtime-dir DIR" among them replaces the
  // daemon's own runtime directory. `nofile` > 0: the daemon's RLIMIT_NOFILE.
  explicit DaemonProcess(int cpus = 2, std::vector<std::string> extra = {}, int nofile = 0);
  ~DaemonProcess();

  const std::string& address() const { return address_; }
  const std::string& dir() const { return dir_; }
  const std::string& runtime_dir() const { return runtime_dir_; }
  pid_t pid() const { return pid_; }
  bool ready() const { return ready_; }
  std::shared_ptr<grpc::Channel> channel() const;

  // Send SIGTERM and wait (bounded) for the exit; the raw wait status, or
  // nullopt if it did not exit in time.
  std::optional<int> terminate(std::chrono::milliseconds limit);
  // The daemon's log so far (for failure messages).
  std::string log() const;
  // Health check (grpc.health.v1, overall server): true when SERVING.
  bool serving() const;

 private:
  std::string dir_, runtime_dir_, address_;
  pid_t pid_ = -1;
  bool ready_ = false;
};

// Metadata and deadlines for one call.
std::unique_ptr<grpc::ClientContext> call_ctx(const std::string& token,
                                              std::chrono::milliseconds limit =
                                                  std::chrono::seconds(10));

v1::Syscall sys(const emul::SysArgs& a);

// `server_tests --child-conns PATH N` (test_listener.cc).
int child_conns(const char* path, int n);

// An attached emulated process: the Session stream and the Kernel stub.
class Proc {
 public:
  explicit Proc(std::shared_ptr<grpc::Channel> ch, const std::string& comm = "e2e");
  ~Proc();  // cancels the session if still open

  bool ok() const { return ok_; }
  int32_t pid() const { return attached_.pid(); }
  const std::string& token() const { return attached_.token(); }
  const v1::Attached& attached() const { return attached_; }
  v1::Kernel::Stub& stub() { return *stub_; }

  grpc::Status start(int32_t lid, v1::SyscallReturn* out);
  grpc::Status call(int32_t lid, const emul::SysArgs& a, v1::SyscallReturn* out,
                    std::chrono::milliseconds limit = std::chrono::seconds(10));
  // Read session events until proc_exited (kicks and others are skipped);
  // then the stream's final status.
  std::optional<v1::ExitStatus> await_exit(grpc::Status* final_status);
  void cancel_session() { session_ctx_.TryCancel(); }

 private:
  std::unique_ptr<v1::Kernel::Stub> stub_;
  grpc::ClientContext session_ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionEvent>> session_;
  v1::Attached attached_;
  bool ok_ = false;
};

}  // namespace lwpd::test
