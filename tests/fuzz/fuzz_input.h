// FuzzInput: one fuzz input read as a stream of small integers.
//
// Reading past the end yields zeros (and empty strings), so every prefix of an input is a
// valid, shorter input: the fuzzer's mutations never produce a "malformed" case that a
// target would have to reject, and a byte keeps its meaning when later bytes change. The
// targets decode *choices* from these numbers (which call, which LWP, which argument
// variant), never trust them as sizes or indices without a modulo.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lwpd::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : p_(data), n_(size) {}

  bool done() const { return n_ == 0; }
  size_t left() const { return n_; }

  uint8_t u8() {
    if (n_ == 0) return 0;
    n_--;
    return *p_++;
  }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  uint32_t u32() { return u16() | (static_cast<uint32_t>(u16()) << 16); }
  uint64_t u64() { return u32() | (static_cast<uint64_t>(u32()) << 32); }
  bool bit() { return (u8() & 1) != 0; }
  // A choice among `n` alternatives (n > 0).
  unsigned pick(unsigned n) { return u8() % n; }

  // Up to `max` bytes, the length taken from the input first.
  std::string bytes(size_t max) {
    size_t len = max == 0 ? 0 : u8() % (max + 1);
    if (len > n_) len = n_;
    std::string s(reinterpret_cast<const char*>(p_), len);
    p_ += len;
    n_ -= len;
    return s;
  }

 private:
  const uint8_t* p_;
  size_t n_;
};

}  // namespace lwpd::fuzz
