#include "tools/impbench/tcp_table.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

namespace impgate::bench {
namespace {

constexpr int kEstablished = 0x01;
constexpr int kListen = 0x0A;

// Calls `row(localPort, remotePort, state)` for each IPv4 TCP socket. The rows read
// "sl local_address rem_address st ...", addresses as HEXIP:HEXPORT.
void forEachSocket(const std::function<void(uint16_t, uint16_t, int)>& row) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    if (!(fields >> slot >> local >> remote >> state)) continue;
    auto port = [](const std::string& address) {
      auto colon = address.find(':');
      return colon == std::string::npos
                 ? uint16_t{0}
                 : static_cast<uint16_t>(std::stoul(address.substr(colon + 1), nullptr, 16));
    };
    row(port(local), port(remote), static_cast<int>(std::stoul(state, nullptr, 16)));
  }
}

}  // namespace

bool isListening(uint16_t port) {
  bool found = false;
  forEachSocket([&](uint16_t local, uint16_t, int state) {
    if (local == port && state == kListen) found = true;
  });
  return found;
}

std::size_t establishedTo(uint16_t port) {
  std::size_t count = 0;
  forEachSocket([&](uint16_t, uint16_t remote, int state) {
    if (remote == port && state == kEstablished) ++count;
  });
  return count;
}

uint16_t freeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace impgate::bench
