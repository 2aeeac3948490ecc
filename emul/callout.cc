#include "emul/callout.h"

#include <pthread.h>

#include <algorithm>

namespace lwpd::emul {

Callout::Callout(Handler h, bool virtual_clock)
    : handler_(std::move(h)), virtual_(virtual_clock), vnow_(Clock::now()) {
  if (!virtual_) thread_ = std::thread([this] { run(); });
}

Callout::~Callout() {
  {
    MutexLock g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Callout::Clock::time_point Callout::now() const {
  if (!virtual_) return Clock::now();
  MutexLock g(mu_);
  return vnow_;
}

bool Callout::fire_next() {
  Key key;
  Entry e;
  {
    MutexLock g(mu_);
    if (!virtual_ || q_.empty()) return false;
    auto it = q_.begin();
    key = it->first;
    e = std::move(it->second);
    q_.erase(it);
    vnow_ = std::max(vnow_, key.when);
  }
  if (auto p = e.proc.lock()) handler_(p, e.lid, key.seq);
  return true;
}

void Callout::arm(Key k, std::weak_ptr<Proc> p, netbsd::lwpid_t lid) {
  bool earliest;
  {
    MutexLock g(mu_);
    auto [it, fresh] = q_.emplace(k, Entry{std::move(p), lid});
    earliest = it == q_.begin();
  }
  if (earliest) cv_.notify_one();
}

void Callout::cancel(Key k) {
  MutexLock g(mu_);
  q_.erase(k);
}

size_t Callout::pending() const {
  MutexLock g(mu_);
  return q_.size();
}

void Callout::run() {
  pthread_setname_np(pthread_self(), "lwpd-callout");
  UniqueLock lk(mu_);
  while (!stop_) {
    if (q_.empty()) {
      cv_.wait(lk);
      continue;
    }
    auto it = q_.begin();
    // By value: wait_until reads the deadline again after releasing the lock,
    // when cancel() may already have erased the entry it came from.
    const Clock::time_point when = it->first.when;
    if (Clock::now() < when) {
      cv_.wait_until(lk, when);
      continue;
    }
    Key key = it->first;
    Entry e = std::move(it->second);
    q_.erase(it);
    // The handler takes the process lock, which orders before ours.
    lk.unlock();
    if (auto p = e.proc.lock()) handler_(p, e.lid, key.seq);
    lk.lock();
  }
}

}  // namespace lwpd::emul
