#include "gateway/base/metrics/metrics_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "gateway/base/log.h"
#include "gateway/base/metrics/http_request.h"
#include "gateway/base/metrics/text_format.h"

namespace impgate::metrics {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::string_view kComp = "metrics";
constexpr std::size_t kMaxRequestHead = 8192;
constexpr std::size_t kReadChunk = 4096;
// After the response, the client gets this long to close its side before we drop it.
constexpr std::chrono::milliseconds kLingerTime{1000};
// Out of file descriptors: stop accepting for a moment rather than spin on a readable listener.
constexpr std::chrono::milliseconds kAcceptPause{100};
// Connections accepted per turn of the loop at most.
constexpr std::size_t kAcceptBatch = 64;

struct Client {
  // In the order connections are closed to make room: one that has its response is worth
  // least, one being answered most.
  enum class Phase { kLingering, kReading, kWriting };
  int fd = -1;
  Phase phase = Phase::kReading;
  uint64_t serial = 0;  // accept order: the oldest goes first
  std::string in;
  std::string out;
  std::size_t written = 0;
  Clock::time_point deadline;
};

std::string response(std::string_view status, std::string_view contentType, std::string_view body,
                     std::string_view extraHeaders = {}) {
  std::string r;
  r.reserve(body.size() + 160);
  r.append("HTTP/1.1 ").append(status).append("\r\n");
  r.append("Content-Type: ").append(contentType).append("\r\n");
  r.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  r.append(extraHeaders);
  r.append("Connection: close\r\n\r\n");
  r.append(body);
  return r;
}

constexpr std::string_view kPlain = "text/plain; charset=utf-8";

std::string answer(const Registry& registry, std::string_view head) {
  auto line = parseRequestLine(head);
  if (!line) return response("400 Bad Request", kPlain, "bad request\n");
  if (line->path != "/metrics") return response("404 Not Found", kPlain, "not found\n");
  if (line->method != "GET") {
    return response("405 Method Not Allowed", kPlain, "method not allowed\n", "Allow: GET\r\n");
  }
  return response("200 OK", text_format::kContentType, registry.render());
}

std::string errnoText(std::string_view what) {
  return std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

MetricsServer::MetricsServer(const Registry& registry, Options options)
    : registry_(registry), opts_(std::move(options)) {}

MetricsServer::~MetricsServer() {
  stop();
}

Status MetricsServer::start() {
  if (thread_.joinable()) {
    log::error(kComp, "cannot start metrics server", {{"reason", "already started"}});
    return Error{ErrorCode::kAlreadyStarted, "already started"};
  }
  auto fail = [&](ErrorCode code, std::string why) -> Status {
    if (listenFd_ >= 0) ::close(listenFd_);
    if (wakeFd_ >= 0) ::close(wakeFd_);
    listenFd_ = wakeFd_ = -1;
    log::error(kComp, "cannot start metrics server", {{"reason", why}});
    return Error{code, std::move(why)};
  };

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(opts_.port);
  int gai = ::getaddrinfo(opts_.host.empty() ? nullptr : opts_.host.c_str(), service.c_str(),
                          &hints, &res);
  if (gai != 0)
    return fail(ErrorCode::kResolve, "resolve '" + opts_.host + "': " + ::gai_strerror(gai));
  std::string lastError = "no address";
  for (addrinfo* ai = res; ai && listenFd_ < 0; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      lastError = errnoText("socket");
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
      lastError = errnoText("bind " + opts_.host + ":" + service);
      ::close(fd);
      continue;
    }
    listenFd_ = fd;
  }
  ::freeaddrinfo(res);
  if (listenFd_ < 0) return fail(ErrorCode::kSocket, lastError);

  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return fail(ErrorCode::kSocket, errnoText("getsockname"));
  }
  port_ = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                     : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);

  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd_ < 0) return fail(ErrorCode::kSocket, errnoText("eventfd"));
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
  log::info(kComp, "metrics server listening", {{"host", opts_.host}, {"port", port_}});
  return {};
}

void MetricsServer::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wakeFd_, &one, sizeof one);
  thread_.join();
  ::close(listenFd_);
  ::close(wakeFd_);
  listenFd_ = wakeFd_ = -1;
}

void MetricsServer::run() {
  std::vector<Client> clients;
  std::vector<pollfd> fds;
  char buf[kReadChunk];
  auto acceptPausedUntil = Clock::time_point::min();

  uint64_t accepted = 0;

  auto closeClient = [](Client& c) {
    ::close(c.fd);
    c.fd = -1;
  };
  // The request is in (or is hopeless): queue the response and start writing it.
  auto respond = [](Client& c, std::string out, Clock::time_point deadline) {
    c.out = std::move(out);
    c.written = 0;
    c.phase = Client::Phase::kWriting;
    c.deadline = deadline;
  };
  // Each step below does one non-blocking read or write and may close the client.
  auto readRequest = [&](Client& c, Clock::time_point now) {
    ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
      closeClient(c);
      return;
    }
    if (r > 0) c.in.append(buf, static_cast<std::size_t>(r));
    if (auto head = requestHeadLength(c.in)) {
      respond(c, answer(registry_, std::string_view(c.in).substr(0, *head)),
              now + opts_.clientTimeout);
    } else if (c.in.size() > kMaxRequestHead) {
      respond(c, response("431 Request Header Fields Too Large", kPlain, "too large\n"),
              now + opts_.clientTimeout);
    }
  };
  auto writeResponse = [&](Client& c, Clock::time_point now) {
    ssize_t w = ::send(c.fd, c.out.data() + c.written, c.out.size() - c.written,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      closeClient(c);
      return;
    }
    if (w > 0) c.written += static_cast<std::size_t>(w);
    if (c.written == c.out.size()) {
      // Half-close and let the client read everything before its socket sees our close:
      // closing with unread request bytes would reset the connection and lose the response.
      ::shutdown(c.fd, SHUT_WR);
      c.phase = Client::Phase::kLingering;
      c.deadline = std::min(c.deadline, now + kLingerTime);
      std::string().swap(c.out);
    }
  };
  // At the cap, the connection worth least makes room (lingering before reading before
  // writing, the oldest first), so idle or slow clients can never lock a scraper out: a new
  // scraper's request is read as soon as it is accepted, below.
  auto evictOne = [&] {
    auto victim =
        std::min_element(clients.begin(), clients.end(), [](const auto& a, const auto& b) {
          if (a.phase != b.phase) return a.phase < b.phase;
          return a.serial < b.serial;
        });
    closeClient(*victim);
    clients.erase(victim);
  };

  while (!stopping_) {
    auto now = Clock::now();
    fds.clear();
    fds.push_back({wakeFd_, POLLIN, 0});
    bool acceptPaused = now < acceptPausedUntil;
    fds.push_back({listenFd_, static_cast<short>(acceptPaused ? 0 : POLLIN), 0});
    auto nextDeadline = acceptPaused ? acceptPausedUntil : Clock::time_point::max();
    for (const auto& c : clients) {
      short events = c.phase == Client::Phase::kWriting ? POLLOUT : POLLIN;
      fds.push_back({c.fd, events, 0});
      nextDeadline = std::min(nextDeadline, c.deadline);
    }
    int timeoutMs = -1;
    if (nextDeadline != Clock::time_point::max()) {
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(nextDeadline - now).count();
      timeoutMs = static_cast<int>(std::clamp<int64_t>(wait, 0, 60000));
    }
    int ready = ::poll(fds.data(), fds.size(), timeoutMs);
    if (ready < 0) {
      if (errno == EINTR) continue;
      log::error(kComp, "poll failed; metrics server stops", {{"reason", std::strerror(errno)}});
      break;
    }
    if (fds[0].revents) break;  // stop()
    now = Clock::now();

    for (std::size_t i = 0; i < clients.size(); ++i) {
      Client& c = clients[i];
      short rev = fds[i + 2].revents;
      if (now >= c.deadline) {
        closeClient(c);
        continue;
      }
      if (rev == 0) continue;
      if (c.phase == Client::Phase::kReading) {
        readRequest(c, now);
        // Write at once: the response usually fits the socket buffer, and the slot frees.
        if (c.fd >= 0 && c.phase == Client::Phase::kWriting) writeResponse(c, now);
      } else if (c.phase == Client::Phase::kWriting) {
        writeResponse(c, now);
      } else {
        ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) closeClient(c);
      }
    }
    clients.erase(
        std::remove_if(clients.begin(), clients.end(), [](const Client& c) { return c.fd < 0; }),
        clients.end());

    if (fds[1].revents & POLLIN) {
      // A bounded batch: a connect flood cannot keep the loop from serving its clients.
      for (std::size_t n = 0; n < kAcceptBatch; ++n) {
        int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            acceptPausedUntil = now + kAcceptPause;
          }
          break;
        }
        if (opts_.maxClients == 0) {
          ::close(fd);
          continue;
        }
        if (clients.size() >= opts_.maxClients) evictOne();
        Client c;
        c.fd = fd;
        c.serial = accepted++;
        c.deadline = now + opts_.clientTimeout;
        // A scraper sends its request right after connecting: serve it now if it is here, so
        // that connections accepted after it in this burst cannot evict it first.
        readRequest(c, now);
        if (c.fd >= 0 && c.phase == Client::Phase::kWriting) writeResponse(c, now);
        if (c.fd >= 0) clients.push_back(std::move(c));
      }
    }
  }
  for (auto& c : clients) closeClient(c);
}

}  // namespace impgate::metrics
