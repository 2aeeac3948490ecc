// Admin rights: the daemon writes a fresh random token to a 0600 file in its
// runtime directory at start-up (main.cc); whoever can read that file may act
// on any process by sending the token as "lwpd-admin-token" metadata.
//
// Session identity: from the kernel's credentials of the connection (the daemon's own
// listener reads SO_PEERCRED at accept), never from what a client says about itself.

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

namespace lwpd::server {

SessionIdentity session_identity(const Daemon& d, const grpc::CallbackServerContext* ctx) {
  SessionIdentity who;
  if (d.listener == nullptr) {
    who.uid = d.uid;
    return who;
  }
  who.peer = d.listener->peer_of(*ctx);
  if (who.peer && who.peer->is_unix) {
    // The kernel's word. The admin token does not change it: a local admin attaches as
    // the user it is.
    who.uid = who.peer->uid;
  } else {
    // No kernel credentials (TCP, or a connection the listener cannot vouch for any more):
    // unprivileged, unless the caller proves it holds the admin token.
    who.uid = is_admin(d, ctx) ? 0 : kNobodyUid;
  }
  return who;
}

}  // namespace lwpd::server
