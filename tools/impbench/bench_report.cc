#include "tools/impbench/bench_report.h"

#include <cstdarg>
#include <cstdio>

namespace impgate::bench {
namespace {

using json = nlohmann::json;

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buffer[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buffer, sizeof buffer, fmt, args);
  va_end(args);
  return buffer;
}

std::optional<double> rssPerConnection(const ServerFigures& s) {
  if (!s.memory || s.memory->connections == 0) return std::nullopt;
  return s.memory->perConnectionKiB();
}

std::optional<double> fullCpuUs(const ServerFigures& s) {
  if (!s.full || s.full->completed == 0) return std::nullopt;
  return s.full->cpuPerHandshakeUs();
}

// A wave gives a figure "per resumed handshake" when (nearly) every reconnect resumed. Clients
// that failed in the full wave have no ticket, so a few full handshakes may be mixed in; past
// 1 % the figure would be something else, and none is given.
bool mostlyResumed(const HandshakeFigures& w) {
  return w.completed > 0 && w.resumed * 100 >= w.completed * 99;
}

std::optional<double> resumedCpuUs(const ServerFigures& s) {
  if (!s.resumed || !mostlyResumed(*s.resumed)) return std::nullopt;
  return s.resumed->cpuPerHandshakeUs();
}

// In memory there is no RSS to read: the OpenSSL figure is the heap an idle server SSL holds.
std::optional<double> opensslIdleKiB(const OpensslFigures& o) {
  if (!o.ran || o.retainedConnections == 0) return std::nullopt;
  return o.heapPerIdleServerSslKiB;
}

std::optional<double> opensslFullUs(const OpensslFigures& o) {
  if (!o.ran || o.fullHandshakes == 0) return std::nullopt;
  return o.fullServerUs;
}

std::optional<double> opensslResumedUs(const OpensslFigures& o) {
  if (!o.ran || o.resumedHandshakes == 0 || o.resumedAccepted != o.resumedHandshakes) {
    return std::nullopt;
  }
  return o.resumedServerUs;
}

std::string kib(std::optional<double> v) {
  return v ? format("%.1f KiB", *v) : "-";
}
std::string ms(std::optional<double> us) {
  return us ? format("%.2f ms", *us / 1000) : "-";
}
std::string ratio(std::optional<double> a, std::optional<double> b) {
  return a && b && *b > 0 ? format("%.2f", *a / *b) : "-";
}
std::optional<double> ratioValue(std::optional<double> a, std::optional<double> b) {
  if (a && b && *b > 0) return *a / *b;
  return std::nullopt;
}

// The resumed cell says why there is no figure when the server did not resume.
std::string resumedCell(const ServerFigures& s) {
  if (!s.resumed) return "-";
  if (s.resumed->resumed == 0) return "no resume";
  if (!mostlyResumed(*s.resumed)) return "partial";
  return ms(s.resumed->cpuPerHandshakeUs()) + (s.resumed->allResumed() ? "" : "*");
}

std::string row(const std::string& figure, const std::string& impgate, const std::string& mosquitto,
                const std::string& openssl, const std::string& toMosquitto,
                const std::string& toOpenssl) {
  return format("%-37s%-11s%-12s%-10s%-14s%s\n", figure.c_str(), impgate.c_str(), mosquitto.c_str(),
                openssl.c_str(), toMosquitto.c_str(), toOpenssl.c_str());
}

std::string waveLine(const char* name, const HandshakeFigures& w, const char* reached) {
  std::string line = format(
      "  %-8s %zu/%zu %s in %.2f s (%.0f/s, at most %zu in flight), %zu/%zu TLS sessions resumed",
      name, w.completed, w.attempted, reached, w.seconds,
      w.seconds > 0 ? static_cast<double>(w.completed) / w.seconds : 0.0, w.maxInFlight, w.resumed,
      w.completed);
  line += format("\n           server CPU %.3f s (main thread %.3f s; clock ticks %.2f s)",
                 w.serverCpuSeconds, w.serverMainThreadCpuSeconds, w.serverCpuTickSeconds);
  if (w.busCpuSeconds) {
    line += format("; bus broker CPU %.3f s (%.2f ms per connection)", *w.busCpuSeconds,
                   w.completed ? *w.busCpuSeconds * 1000 / static_cast<double>(w.completed) : 0.0);
  }
  if (w.failed > 0) line += format("; %zu FAILED, last: %s", w.failed, w.lastFailure.c_str());
  return line + "\n";
}

std::string serverLines(const char* name, const ServerFigures& s, const char* reached) {
  if (!s.ran) return format("%s: skipped\n", name);
  std::string out = format("%s%s%s:\n", name, s.version.empty() ? "" : " ", s.version.c_str());
  if (s.full) out += waveLine("full", *s.full, reached);
  if (s.resumed) out += waveLine("resumed", *s.resumed, reached);
  if (s.memory) {
    const MemoryFigures& m = *s.memory;
    out += format(
        "  memory   RSS %.1f -> %.1f MiB (anonymous %.1f -> %.1f MiB) with %zu idle "
        "connections; idle CPU %.0f us/s\n",
        m.rssBeforeKiB / 1024.0, m.rssAfterKiB / 1024.0, m.anonBeforeKiB / 1024.0,
        m.anonAfterKiB / 1024.0, m.connections, m.idleCpuUsPerSecond);
  }
  if (!s.error.empty()) out += "  ERROR: " + s.error + "\n";
  return out;
}

json waveJson(const std::optional<HandshakeFigures>& w) {
  if (!w) return nullptr;
  return {{"attempted", w->attempted},
          {"completed", w->completed},
          {"resumed", w->resumed},
          {"failed", w->failed},
          {"lastFailure", w->lastFailure},
          {"seconds", w->seconds},
          {"maxInFlight", w->maxInFlight},
          {"serverCpuSeconds", w->serverCpuSeconds},
          {"serverCpuTickSeconds", w->serverCpuTickSeconds},
          {"serverMainThreadCpuSeconds", w->serverMainThreadCpuSeconds},
          {"busCpuSeconds", w->busCpuSeconds ? json(*w->busCpuSeconds) : json()},
          {"serverCpuPerHandshakeUs", w->completed ? json(w->cpuPerHandshakeUs()) : json()}};
}

json memoryJson(const std::optional<MemoryFigures>& m) {
  if (!m) return nullptr;
  return {{"connections", m->connections},
          {"rssBeforeKiB", m->rssBeforeKiB},
          {"rssAfterKiB", m->rssAfterKiB},
          {"anonBeforeKiB", m->anonBeforeKiB},
          {"anonAfterKiB", m->anonAfterKiB},
          {"rssPerConnectionKiB", m->connections ? json(m->perConnectionKiB()) : json()},
          {"idleCpuUsPerSecond", m->idleCpuUsPerSecond}};
}

json serverJson(const ServerFigures& s) {
  return {{"ran", s.ran},
          {"error", s.error},
          {"version", s.version},
          {"full", waveJson(s.full)},
          {"resumed", waveJson(s.resumed)},
          {"memory", memoryJson(s.memory)}};
}

json optionalJson(std::optional<double> v) {
  return v ? json(*v) : json();
}

}  // namespace

double HandshakeFigures::cpuPerHandshakeUs() const {
  return completed ? serverCpuSeconds * 1e6 / static_cast<double>(completed) : 0;
}

double MemoryFigures::perConnectionKiB() const {
  if (connections == 0) return 0;
  return (static_cast<double>(rssAfterKiB) - static_cast<double>(rssBeforeKiB)) /
         static_cast<double>(connections);
}

bool BenchReport::complete() const {
  if (!error.empty()) return false;
  for (const ServerFigures* s : {&impgate, &mosquitto}) {
    if (!s->ran) continue;
    if (!s->error.empty()) return false;
    if (!s->full || !s->memory) return false;
    for (const auto* w : {&s->full, &s->resumed}) {
      if (*w && ((*w)->completed != (*w)->attempted || (*w)->failed > 0)) return false;
    }
  }
  if (openssl.ran && !openssl.error.empty()) return false;
  return true;
}

std::string formatReport(const BenchReport& r) {
  std::string out;
  out += row("figure", "impgate", "mosquitto", "openssl", "impgate/mosq", "impgate/openssl");
  out += row("RSS per idle mutual-TLS connection", kib(rssPerConnection(r.impgate)),
             kib(rssPerConnection(r.mosquitto)), kib(opensslIdleKiB(r.openssl)),
             ratio(rssPerConnection(r.impgate), rssPerConnection(r.mosquitto)),
             ratio(rssPerConnection(r.impgate), opensslIdleKiB(r.openssl)));
  out += row("server CPU per full handshake", ms(fullCpuUs(r.impgate)), ms(fullCpuUs(r.mosquitto)),
             ms(opensslFullUs(r.openssl)), ratio(fullCpuUs(r.impgate), fullCpuUs(r.mosquitto)),
             ratio(fullCpuUs(r.impgate), opensslFullUs(r.openssl)));
  out += row("server CPU per resumed handshake", resumedCell(r.impgate), resumedCell(r.mosquitto),
             r.openssl.ran ? ms(opensslResumedUs(r.openssl)) : "-",
             ratio(resumedCpuUs(r.impgate), resumedCpuUs(r.mosquitto)),
             ratio(resumedCpuUs(r.impgate), opensslResumedUs(r.openssl)));
  out += "\n";
  out += serverLines("impgate", r.impgate, "online");
  out += serverLines("mosquitto", r.mosquitto, "CONNACK");
  if (!r.openssl.ran) {
    out += "openssl: skipped\n";
  } else {
    out += format(
        "openssl (in memory, impgate's TLS settings):\n  %zu full and %zu resumed handshakes "
        "(%zu resumed); client CPU %.2f / %.2f ms per full / resumed handshake\n"
        "  an idle server SSL holds %.1f KiB of heap after a full handshake (%zu kept)\n",
        r.openssl.fullHandshakes, r.openssl.resumedHandshakes, r.openssl.resumedAccepted,
        r.openssl.fullClientUs / 1000, r.openssl.resumedClientUs / 1000,
        r.openssl.heapPerIdleServerSslKiB, r.openssl.retainedConnections);
    if (!r.openssl.error.empty()) out += "  ERROR: " + r.openssl.error + "\n";
  }
  std::string sources;
  for (const auto& source : r.sources) sources += (sources.empty() ? " from " : ",") + source;
  out += format("run: %s, %s, %u CPUs (%s), Linux %s; %zu devices at %.0f/s%s; %.1f s\n",
                r.date.c_str(), r.opensslVersion.c_str(), r.cpus, r.cpuModel.c_str(),
                r.kernel.c_str(), r.devices, r.rate, sources.c_str(), r.elapsedSeconds);
  out +=
      "impgate's handshake figures include the imp HELLO/WELCOME exchange and the presence "
      "publish;\nmosquitto's include MQTT CONNECT/CONNACK; openssl's are the TLS handshake "
      "alone.\nopenssl's memory figure is heap in use per idle server SSL (no kernel, no "
      "allocator slack).\n";
  const std::pair<const char*, const ServerFigures*> servers[] = {{"impgate", &r.impgate},
                                                                  {"mosquitto", &r.mosquitto}};
  for (const auto& [name, s] : servers) {
    // A server that fell behind held many handshakes' buffers at once; the allocator keeps
    // that high-water mark, and it shows in the RSS per connection.
    if (s->full && s->full->maxInFlight * 10 > s->full->attempted && s->full->maxInFlight > 20) {
      out += format(
          "NOTE: %s fell behind the ramp (up to %zu handshakes in flight); its RSS includes what "
          "its allocator kept from that peak. A lower --rate measures idle connections alone.\n",
          name, s->full->maxInFlight);
    }
    if (s->resumed && !s->resumed->allResumed()) {
      const HandshakeFigures& w = *s->resumed;
      std::size_t noTicket = s->full ? s->full->attempted - s->full->completed : 0;
      out += format(
          "WARNING: %s: only %zu of %zu reconnects resumed their TLS session (%zu clients had "
          "no ticket, having failed in the full wave); %s\n",
          name, w.resumed, w.completed, noTicket,
          mostlyResumed(w) ? "* the figure includes the few full handshakes"
                           : "no figure per resumed handshake is given.");
    }
  }
  if (r.openssl.ran && r.openssl.resumedAccepted != r.openssl.resumedHandshakes) {
    out += format("WARNING: openssl: only %zu of %zu resumption attempts were accepted.\n",
                  r.openssl.resumedAccepted, r.openssl.resumedHandshakes);
  }
  if (!r.error.empty()) out += "ERROR: " + r.error + "\n";
  if (!r.complete()) out += "INCOMPLETE: some connections or phases did not finish.\n";
  return out;
}

json toJson(const BenchReport& r) {
  json openssl = {
      {"ran", r.openssl.ran},
      {"error", r.openssl.error},
      {"fullHandshakes", r.openssl.fullHandshakes},
      {"resumedHandshakes", r.openssl.resumedHandshakes},
      {"resumedAccepted", r.openssl.resumedAccepted},
      {"fullServerCpuUs", optionalJson(opensslFullUs(r.openssl))},
      {"fullClientCpuUs", r.openssl.ran ? json(r.openssl.fullClientUs) : json()},
      {"resumedServerCpuUs", optionalJson(opensslResumedUs(r.openssl))},
      {"resumedClientCpuUs", r.openssl.ran ? json(r.openssl.resumedClientUs) : json()},
      {"retainedConnections", r.openssl.retainedConnections},
      {"heapPerIdleServerSslKiB",
       r.openssl.retainedConnections ? json(r.openssl.heapPerIdleServerSslKiB) : json()}};
  json ratios = {
      {"rssPerConnectionImpgateToMosquitto",
       optionalJson(ratioValue(rssPerConnection(r.impgate), rssPerConnection(r.mosquitto)))},
      {"rssPerConnectionImpgateToOpensslHeap",
       optionalJson(ratioValue(rssPerConnection(r.impgate), opensslIdleKiB(r.openssl)))},
      {"fullHandshakeCpuImpgateToMosquitto",
       optionalJson(ratioValue(fullCpuUs(r.impgate), fullCpuUs(r.mosquitto)))},
      {"fullHandshakeCpuImpgateToOpenssl",
       optionalJson(ratioValue(fullCpuUs(r.impgate), opensslFullUs(r.openssl)))},
      {"resumedHandshakeCpuImpgateToMosquitto",
       optionalJson(ratioValue(resumedCpuUs(r.impgate), resumedCpuUs(r.mosquitto)))},
      {"resumedHandshakeCpuImpgateToOpenssl",
       optionalJson(ratioValue(resumedCpuUs(r.impgate), opensslResumedUs(r.openssl)))}};
  return {{"benchmark", "connections"},
          {"complete", r.complete()},
          {"error", r.error},
          {"date", r.date},
          {"machine",
           {{"cpus", r.cpus},
            {"cpuModel", r.cpuModel},
            {"kernel", r.kernel},
            {"openssl", r.opensslVersion}}},
          {"options",
           {{"devices", r.devices},
            {"rate", r.rate},
            {"sources", r.sources},
            {"idleSeconds", r.idleSeconds}}},
          {"impgate", serverJson(r.impgate)},
          {"mosquitto", serverJson(r.mosquitto)},
          {"openssl", openssl},
          {"ratios", ratios},
          {"elapsedSeconds", r.elapsedSeconds}};
}

}  // namespace impgate::bench
