// The daemon's runtime directory: one daemon per directory, and what a daemon that died
// (kill -9) left there cleaned up at the next start.
//
// Ownership is an exclusive flock(2) on `lwpd.lock` in the directory, held for the
// daemon's life (the kernel drops it when the process dies, however it dies). Only the
// holder may remove files, so a second daemon pointed at the same directory refuses to
// start instead of deleting the lwpctl regions the first one's clients have mapped.
#pragma once

#include <string>

namespace lwpd::server {

class RuntimeDirLock {
 public:
  RuntimeDirLock() = default;
  ~RuntimeDirLock();  // releases the lock (the lock file stays: see runtime_dir.cc)
  RuntimeDirLock(const RuntimeDirLock&) = delete;
  RuntimeDirLock& operator=(const RuntimeDirLock&) = delete;

  // Takes the lock on `dir`. False with `*error` set when another daemon holds it or
  // the lock file cannot be opened.
  bool acquire(const std::string& dir, std::string* error);

 private:
  int fd_ = -1;
};

// Removes the lwpctl region files ("lwpctl.<digits>", regular files only) that a daemon
// which died without cleaning up left in `dir`. Call with the directory's lock held.
// Returns how many were removed.
int remove_stale_lwpctl_files(const std::string& dir);

}  // namespace lwpd::server
