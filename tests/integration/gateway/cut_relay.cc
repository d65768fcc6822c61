#include "tests/integration/gateway/cut_relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <vector>

namespace impgate::testing {
namespace {

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

struct Pair {
  int device = -1;
  int gateway = -1;
  bool first = false;
  uint64_t down = 0;  // bytes gateway -> device
};

void closePair(Pair& p) {
  if (p.device >= 0) ::close(p.device);
  if (p.gateway >= 0) ::close(p.gateway);
  p.device = p.gateway = -1;
}

}  // namespace

CutRelay::CutRelay(uint16_t target, uint64_t cutAfterDownstreamBytes)
    : target_(target), cutAfter_(cutAfterDownstreamBytes) {
  listenFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  if (listenFd_ < 0 || ::bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listenFd_, 16) != 0 ||
      ::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("relay: cannot listen");
  }
  port_ = ntohs(addr.sin_port);
  stopFd_ = ::eventfd(0, EFD_CLOEXEC);
  thread_ = std::thread([this] { run(); });
}

CutRelay::~CutRelay() {
  uint64_t one = 1;
  (void)!::write(stopFd_, &one, sizeof one);
  thread_.join();
  ::close(listenFd_);
  ::close(stopFd_);
}

void CutRelay::run() {
  std::vector<Pair> pairs;
  bool firstSeen = false;
  char buf[16384];
  for (;;) {
    std::vector<pollfd> fds{{stopFd_, POLLIN, 0}, {listenFd_, POLLIN, 0}};
    for (const auto& p : pairs) {
      fds.push_back({p.device, POLLIN, 0});
      fds.push_back({p.gateway, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0) continue;
    if (fds[0].revents) break;
    const std::size_t polled = pairs.size();  // a pair accepted below was not polled yet
    if (fds[1].revents & POLLIN) {
      int device = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
      int gateway = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in to = loopback(target_);
      if (device >= 0 && ::connect(gateway, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) {
        pairs.push_back({device, gateway, !firstSeen, 0});
        firstSeen = true;
      } else {
        if (device >= 0) ::close(device);
        ::close(gateway);
      }
    }
    for (std::size_t i = 0; i < polled; ++i) {
      Pair& p = pairs[i];
      const pollfd& fromDevice = fds[2 + 2 * i];
      const pollfd& fromGateway = fds[3 + 2 * i];
      bool done = false;
      if (fromDevice.revents) {
        ssize_t n = ::read(p.device, buf, sizeof buf);
        done = n <= 0 || ::send(p.gateway, buf, n, MSG_NOSIGNAL) != n;
      }
      if (!done && fromGateway.revents) {
        ssize_t n = ::read(p.gateway, buf, sizeof buf);
        if (n > 0 && p.first && p.down + n > cutAfter_) {
          // Pass what fits under the limit, then drop the link in both directions.
          ssize_t part = static_cast<ssize_t>(cutAfter_ - p.down);
          if (part > 0) (void)::send(p.device, buf, part, MSG_NOSIGNAL);
          cut_ = true;
          done = true;
        } else {
          done = n <= 0 || ::send(p.device, buf, n, MSG_NOSIGNAL) != n;
          if (n > 0) p.down += n;
        }
      }
      if (done) closePair(p);
    }
    std::erase_if(pairs, [](const Pair& p) { return p.device < 0; });
  }
  for (auto& p : pairs) closePair(p);
}

}  // namespace impgate::testing
