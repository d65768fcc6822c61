#include "tools/testbed/tcp_table.h"

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

namespace impgate::testbed {
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

}  // namespace impgate::testbed
