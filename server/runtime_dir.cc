#include "server/runtime_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace lwpd::server {

namespace {

// The names emul/lwpctl.cc gives region files: "lwpctl." and a decimal pid.
bool is_lwpctl_name(const char* name) {
  constexpr const char kPrefix[] = "lwpctl.";
  if (std::strncmp(name, kPrefix, sizeof kPrefix - 1) != 0) return false;
  const char* digits = name + sizeof kPrefix - 1;
  if (*digits == '\0') return false;
  for (const char* c = digits; *c != '\0'; c++)
    if (*c < '0' || *c > '9') return false;
  return true;
}

}  // namespace

RuntimeDirLock::~RuntimeDirLock() {
  // The file is not unlinked: a daemon starting meanwhile may have opened it and would
  // then lock an inode no later daemon sees. Closing releases the lock.
  if (fd_ >= 0) ::close(fd_);
}

bool RuntimeDirLock::acquire(const std::string& dir, std::string* error) {
  const std::string path = dir + "/lwpd.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    *error = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(fd);
    *error = e == EWOULDBLOCK
                 ? "another lwpd uses the runtime directory " + dir + " (" + path +
                       " is locked); give this one its own --runtime-dir"
                 : "cannot lock " + path + ": " + std::strerror(e);
    return false;
  }
  fd_ = fd;
  return true;
}

int remove_stale_lwpctl_files(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  int removed = 0;
  while (const dirent* e = ::readdir(d)) {
    if (!is_lwpctl_name(e->d_name)) continue;
    struct stat st {};
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
      continue;
    if (::unlinkat(::dirfd(d), e->d_name, 0) == 0) removed++;
  }
  ::closedir(d);
  return removed;
}

}  // namespace lwpd::server
