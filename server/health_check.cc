// lwpd-health: a minimal grpc.health.v1 client for container health checks.
//
//   lwpd-health [--timeout-ms N] [--service NAME] ENDPOINT
//
// Calls grpc.health.v1.Health/Check on ENDPOINT (unix:///path.sock or
// host:port) and exits 0 iff the reply is SERVING; prints the status. Exit
// codes: 0 SERVING, 1 not serving / RPC failed, 2 usage.
//
// Debian ships no health.proto and no grpc_health_probe, so the two tiny
// messages are encoded by hand over a generic (ByteBuffer) call:
//   HealthCheckRequest  { string service = 1; }
//   HealthCheckResponse { ServingStatus status = 1; }  // 1 = SERVING
// (A later issue replaces this with `lwpstat health`.)

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>

namespace {

const char* status_name(uint64_t s) {
  switch (s) {
    case 0: return "UNKNOWN";
    case 1: return "SERVING";
    case 2: return "NOT_SERVING";
    case 3: return "SERVICE_UNKNOWN";
    default: return "?";
  }
}

// Encode HealthCheckRequest{service}: field 1, wire type 2 (length-delimited).
std::string encode_request(const std::string& service) {
  std::string out;
  if (service.empty()) return out;  // proto3: default values are not sent
  out.push_back(static_cast<char>(0x0a));
  uint64_t n = service.size();
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
  return out + service;
}

bool read_varint(const std::string& b, size_t& i, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && i < b.size(); shift += 7) {
    auto c = static_cast<uint8_t>(b[i++]);
    v |= static_cast<uint64_t>(c & 0x7f) << shift;
    if ((c & 0x80) == 0) return true;
  }
  return false;
}

// Decode HealthCheckResponse.status (absent = 0 UNKNOWN); skips unknown fields.
bool decode_status(const std::string& b, uint64_t& status) {
  status = 0;
  size_t i = 0;
  while (i < b.size()) {
    uint64_t key = 0, v = 0;
    if (!read_varint(b, i, key)) return false;
    switch (key & 7) {
      case 0:
        if (!read_varint(b, i, v)) return false;
        if ((key >> 3) == 1) status = v;
        break;
      case 1: i += 8; break;
      case 5: i += 4; break;
      case 2:
        if (!read_varint(b, i, v) || v > b.size() - i) return false;
        i += v;
        break;
      default: return false;
    }
  }
  return i == b.size();
}

int usage() {
  std::fprintf(stderr, "usage: lwpd-health [--timeout-ms N] [--service NAME] ENDPOINT\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int timeout_ms = 2000;
  std::string service, endpoint;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--timeout-ms" && i + 1 < argc) {
      timeout_ms = std::atoi(argv[++i]);
    } else if (a == "--service" && i + 1 < argc) {
      service = argv[++i];
    } else if (a == "-h" || a == "--help" || (!a.empty() && a[0] == '-') || !endpoint.empty()) {
      return usage();
    } else {
      endpoint = a;
    }
  }
  if (endpoint.empty() || timeout_ms <= 0) return usage();

  auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));

  std::string req = encode_request(service);
  grpc::Slice slice(req);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status st) { done.set_value(std::move(st)); });
  grpc::Status st = done.get_future().get();
  if (!st.ok()) {
    std::fprintf(stderr, "lwpd-health: %s: %s (code %d)\n", endpoint.c_str(),
                 st.error_message().c_str(), static_cast<int>(st.error_code()));
    return 1;
  }

  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!response.Dump(&slices).ok()) return 1;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  uint64_t status = 0;
  if (!decode_status(bytes, status)) {
    std::fprintf(stderr, "lwpd-health: %s: malformed HealthCheckResponse\n", endpoint.c_str());
    return 1;
  }
  std::printf("%s\n", status_name(status));
  return status == 1 ? 0 : 1;
}
