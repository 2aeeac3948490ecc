// Admin rights: the daemon writes a fresh random token to a 0600 file in its
// runtime directory at start-up (main.cc); whoever can read that file may act
// on any process by sending the token as "lwpd-admin-token" metadata.

#include <string_view>

#include "server/services.h"

namespace lwpd::server {

bool is_admin(const Daemon& d, const grpc::CallbackServerContext* ctx) {
  if (d.admin_token.empty()) return false;
  const auto& md = ctx->client_metadata();
  auto it = md.find("lwpd-admin-token");
  if (it == md.end()) return false;
  std::string_view got(it->second.data(), it->second.size());
  const std::string& want = d.admin_token;
  if (got.size() != want.size()) return false;
  // Constant time in the token's content: no early exit on the first mismatch.
  unsigned char diff = 0;
  for (size_t i = 0; i < want.size(); i++) diff |= static_cast<unsigned char>(got[i] ^ want[i]);
  return diff == 0;
}

}  // namespace lwpd::server
