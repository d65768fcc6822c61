// How `impbench messages` reports: a table with same-run ratios for people, JSON for machines,
// a gnuplot PNG of throughput against devices, and the --quick regression thresholds.
#include <unistd.h>

#include <cstdio>
#include <map>
#include <sstream>

#include "tools/impbench/message_bench.h"

namespace impgate::bench {
namespace {

// --quick fails only on gross regressions, each measured against the MQTT-direct path of the
// same run so that a slow or busy machine does not trip it (docs/benchmarks.md). The gateway on
// its reactor-driven broker link measured 1.1-1.7 for the throughput ratio and 0.3-0.5 for the
// CPU ratio on a quiet 2-vCPU machine, and about half as good with other jobs on it; the
// Paho-based gateway before it measured 0.17-1.5 and 2.2-6.5. These limits leave room for a
// busy CI machine and still catch a return to the old path's costs:
// impgate's throughput below this share of direct's...
constexpr double kMinThroughputRatio = 0.3;
// ...or impgate's CPU per message above this multiple of the broker's CPU per message on the
// direct path (mosquitto doing the same job: TLS devices plus the agent).
constexpr double kMaxGatewayCpuRatio = 2.5;
// Any message lost without a receipt fails it as well.

// Why a row's figures need a second look: errors, runs that stalled or were cut off.
std::string notes(const PathFigures& p) {
  std::string text;
  if (p.stalledRuns > 0) {
    text += " stalled " + std::to_string(p.stalledRuns) + "/" + std::to_string(p.runs.size());
  }
  if (p.cutOffRuns > 0) {
    text += " cut off " + std::to_string(p.cutOffRuns) + "/" + std::to_string(p.runs.size());
  }
  if (!p.error.empty()) text += " error: " + p.error;
  return text.empty() ? text : "  !" + text;
}

double ratio(double a, double b) {
  return b > 0 ? a / b : 0;
}

nlohmann::json runJson(const PathRun& run) {
  return {{"sent", run.sent},
          {"received", run.received},
          {"lost", run.lost()},
          {"extra", run.extra()},
          {"acknowledged", run.acknowledged},
          {"refused", run.refused},
          {"receipts", run.receipts},
          {"receiptsNotDelivered", run.receiptsNotDelivered},
          {"firstBadReceipt",
           run.firstBadReceipt.empty() ? nlohmann::json() : nlohmann::json(run.firstBadReceipt)},
          {"seconds", run.seconds},
          {"messagesPerSecond", run.messagesPerSecond()},
          {"gatewayCpuSeconds", run.gatewayCpuSeconds},
          {"brokerCpuSeconds", run.brokerCpuSeconds},
          {"gatewayCpuTickSeconds", run.gatewayCpuTickSeconds},
          {"brokerCpuTickSeconds", run.brokerCpuTickSeconds},
          {"benchCpuSeconds", run.benchCpuSeconds},
          {"stalled", run.stalled},
          {"cutOff", run.cutOff},
          {"error", run.error.empty() ? nlohmann::json() : nlohmann::json(run.error)}};
}

nlohmann::json pathJson(const PathFigures& path) {
  nlohmann::json runs = nlohmann::json::array();
  for (const auto& run : path.runs) runs.push_back(runJson(run));
  return {{"messagesPerSecond", path.messagesPerSecond},
          {"gatewayCpuSecondsPer100k", path.gatewayCpuPer100k},
          {"brokerCpuSecondsPer100k", path.brokerCpuPer100k},
          {"benchCpuSecondsPer100k", path.benchCpuPer100k},
          {"sent", path.sent},
          {"received", path.received},
          {"lost", path.lost},
          {"receipts", path.receipts},
          {"refused", path.refused},
          {"receiptsNotDelivered", path.receiptsNotDelivered},
          {"stalledRuns", path.stalledRuns},
          {"cutOffRuns", path.cutOffRuns},
          {"runs", runs}};
}

nlohmann::json latencyJson(const LatencyFigures& l) {
  return {{"samples", l.samples},
          {"sent", l.sent},
          {"received", l.received},
          {"p50Us", l.p50Us},
          {"p99Us", l.p99Us},
          {"p999Us", l.p999Us},
          {"maxUs", l.maxUs},
          {"error", l.error.empty() ? nlohmann::json() : nlohmann::json(l.error)}};
}

// impgate's server CPU (gateway + broker) against the broker alone on the direct path.
double serverCpuRatio(const CaseResult& c) {
  return ratio(c.impgate.gatewayCpuPer100k + c.impgate.brokerCpuPer100k, c.direct.brokerCpuPer100k);
}

}  // namespace

nlohmann::json toJson(const MessageReport& report) {
  nlohmann::json cases = nlohmann::json::array();
  for (const auto& c : report.cases) {
    cases.push_back(
        {{"name", c.spec.name()},
         {"direction",
          c.spec.direction == Direction::kDeviceToAgent ? "device-to-agent" : "agent-to-device"},
         {"acknowledged", c.spec.acknowledged},
         {"payloadBytes", c.spec.payload},
         {"devices", c.spec.devices},
         {"broker", c.spec.brokerDefault ? "broker-default" : "unlimited"},
         {"impgate", pathJson(c.impgate)},
         {"direct", pathJson(c.direct)},
         {"ratios",
          {{"throughput", ratio(c.impgate.messagesPerSecond, c.direct.messagesPerSecond)},
           {"brokerCpu", ratio(c.impgate.brokerCpuPer100k, c.direct.brokerCpuPer100k)},
           {"serverCpu", serverCpuRatio(c)},
           {"gatewayCpuToDirectBroker",
            ratio(c.impgate.gatewayCpuPer100k, c.direct.brokerCpuPer100k)}}}});
  }
  const auto& o = report.options;
  nlohmann::json out = {
      {"benchmark", "messages"},
      {"date", report.date},
      {"machine",
       {{"kernel", report.kernel}, {"cpuModel", report.cpuModel}, {"cpus", report.cpus}}},
      {"mosquittoVersion", report.mosquittoVersion},
      {"impgateBinary", report.impgateBinary},
      {"impgateSha256", report.impgateSha256},
      {"options",
       {{"devices", o.devices},
        {"payloads", o.payloads},
        {"messages", o.messages},
        {"runLimitSeconds", std::chrono::duration<double>(o.runLimit).count()},
        {"window", o.window},
        {"repeat", o.repeat},
        {"brokerDefault", o.brokerDefault},
        {"latencyRate", o.latencyRate},
        {"latencySeconds", std::chrono::duration<double>(o.latencyDuration).count()},
        {"latencyDevices", o.latencyDevices},
        {"quick", o.quick}}},
      {"cases", cases},
      {"regressions", report.regressions},
      {"complete", report.complete()},
      {"elapsedSeconds", report.elapsedSeconds},
      {"error", report.error.empty() ? nlohmann::json() : nlohmann::json(report.error)}};
  if (report.latencyRan) {
    out["latency"] = {{"impgate", latencyJson(report.latencyImpgate)},
                      {"direct", latencyJson(report.latencyDirect)},
                      {"addedP50Us", report.latencyImpgate.p50Us - report.latencyDirect.p50Us},
                      {"addedP99Us", report.latencyImpgate.p99Us - report.latencyDirect.p99Us},
                      {"addedP999Us", report.latencyImpgate.p999Us - report.latencyDirect.p999Us}};
  } else {
    out["latency"] = nullptr;
  }
  return out;
}

std::string formatReport(const MessageReport& report) {
  std::ostringstream out;
  char line[256];
  out << "impbench messages: " << report.date << ", " << report.cpus << " CPUs (" << report.cpuModel
      << "), kernel " << report.kernel << ", mosquitto " << report.mosquittoVersion << "\n"
      << "impgate: " << report.impgateBinary << " (sha256 " << report.impgateSha256.substr(0, 16)
      << "...)\n"
      << "messages per run " << report.options.messages << ", window " << report.options.window
      << " per device, " << report.options.repeat << " repeat(s), medians\n"
      << "CPU = seconds on a CPU (all threads, schedstat) per 100 000 messages received; "
         "ratios impgate/direct\n\n";
  std::snprintf(line, sizeof line, "%-36s %-8s %9s %6s %7s %8s %8s %8s\n", "case", "path", "msg/s",
                "lost", "refused", "gw CPU", "mq CPU", "bench");
  out << line;
  for (const auto& c : report.cases) {
    auto row = [&](const char* path, const PathFigures& p, bool gateway) {
      char gw[16];
      if (gateway) {
        std::snprintf(gw, sizeof gw, "%.2f", p.gatewayCpuPer100k);
      } else {
        std::snprintf(gw, sizeof gw, "-");
      }
      std::snprintf(line, sizeof line, "%-36s %-8s %9.0f %6zu %7zu %8s %8.2f %8.2f%s\n",
                    gateway ? c.spec.name().c_str() : "", path, p.messagesPerSecond, p.lost,
                    p.refused + p.receiptsNotDelivered, gw, p.brokerCpuPer100k, p.benchCpuPer100k,
                    notes(p).c_str());
      out << line;
    };
    row("impgate", c.impgate, true);
    row("direct", c.direct, false);
    std::snprintf(line, sizeof line, "%-36s %-8s %9.2f %6s %7s %8.2f %8.2f   (gw+mq)/mq %.2f\n", "",
                  "ratio", ratio(c.impgate.messagesPerSecond, c.direct.messagesPerSecond), "", "",
                  ratio(c.impgate.gatewayCpuPer100k, c.direct.brokerCpuPer100k),
                  ratio(c.impgate.brokerCpuPer100k, c.direct.brokerCpuPer100k), serverCpuRatio(c));
    out << line;
  }
  out << "lost: sent, never arrived, no receipt; refused: ACK other than ok, or a receipt other "
         "than \"delivered\"\n"
         "stalled: nothing arrived for 2 s, the rest counted lost; cut off: still arriving "
         "--seconds + 11 s after the start\n"
         "gw CPU ratio: impgate's CPU per message / mosquitto's on the direct path\n";
  if (report.latencyRan) {
    const auto& i = report.latencyImpgate;
    const auto& d = report.latencyDirect;
    std::snprintf(line, sizeof line,
                  "\nlatency, device->agent qos1 64B, %zu devices, %.0f msg/s for %.1f s (us):\n",
                  report.options.latencyDevices, report.options.latencyRate,
                  std::chrono::duration<double>(report.options.latencyDuration).count());
    out << line;
    std::snprintf(line, sizeof line, "%-8s %9s %9s %9s %9s %9s\n", "path", "p50", "p99", "p99.9",
                  "max", "samples");
    out << line;
    for (auto [name, l] :
         {std::pair<const char*, const LatencyFigures*>{"impgate", &i}, {"direct", &d}}) {
      std::snprintf(line, sizeof line, "%-8s %9.0f %9.0f %9.0f %9.0f %9zu%s\n", name, l->p50Us,
                    l->p99Us, l->p999Us, l->maxUs, l->samples,
                    l->received < l->sent ? "  ! messages lost" : "");
      out << line;
    }
    std::snprintf(line, sizeof line, "%-8s %9.0f %9.0f %9.0f\n", "added", i.p50Us - d.p50Us,
                  i.p99Us - d.p99Us, i.p999Us - d.p999Us);
    out << line;
  }
  if (report.options.quick) {
    out << "\nquick thresholds: throughput ratio >= " << kMinThroughputRatio
        << ", gw CPU ratio <= " << kMaxGatewayCpuRatio
        << ", no message lost: " << (report.regressions.empty() ? "passed" : "FAILED") << "\n";
    for (const auto& r : report.regressions) out << "  regression: " << r << "\n";
  }
  if (!report.error.empty()) out << "\nerror: " << report.error << "\n";
  std::snprintf(line, sizeof line, "\n%.1f s in all\n", report.elapsedSeconds);
  out << line;
  return out.str();
}

void checkQuickThresholds(MessageReport& report) {
  char text[256];
  for (const auto& c : report.cases) {
    double throughput = ratio(c.impgate.messagesPerSecond, c.direct.messagesPerSecond);
    if (throughput < kMinThroughputRatio) {
      std::snprintf(text, sizeof text, "%s: impgate throughput %.2f x direct (minimum %.2f)",
                    c.spec.name().c_str(), throughput, kMinThroughputRatio);
      report.regressions.push_back(text);
    }
    double cpu = ratio(c.impgate.gatewayCpuPer100k, c.direct.brokerCpuPer100k);
    if (c.direct.brokerCpuPer100k > 0 && cpu > kMaxGatewayCpuRatio) {
      std::snprintf(text, sizeof text,
                    "%s: impgate CPU per message %.2f x the broker's on the direct path "
                    "(maximum %.2f)",
                    c.spec.name().c_str(), cpu, kMaxGatewayCpuRatio);
      report.regressions.push_back(text);
    }
    for (auto [name, p] : {std::pair<const char*, const PathFigures*>{"impgate", &c.impgate},
                           {"direct", &c.direct}}) {
      if (p->lost > 0 || p->received == 0) {
        std::snprintf(text, sizeof text, "%s: %s lost %zu of %zu messages", c.spec.name().c_str(),
                      name, p->lost, p->sent);
        report.regressions.push_back(text);
      }
    }
  }
}

bool gnuplotAvailable() {
  return std::system("command -v gnuplot >/dev/null 2>&1") == 0;
}

bool plotThroughput(const MessageReport& report, const std::string& file, std::string& error) {
  // Lines: each unlimited-broker case kind (direction, QoS, payload) × path, over devices.
  std::map<std::string, std::map<std::size_t, std::pair<double, double>>> series;
  for (const auto& c : report.cases) {
    if (c.spec.brokerDefault) continue;
    MessageCase kind = c.spec;
    kind.devices = 0;
    std::string name = kind.name();
    name = name.substr(0, name.find(" 0 dev"));
    series[name][c.spec.devices] = {c.impgate.messagesPerSecond, c.direct.messagesPerSecond};
  }
  if (series.empty()) {
    error = "no cases to plot";
    return false;
  }
  FILE* gp = ::popen("gnuplot", "w");
  if (!gp) {
    error = "cannot run gnuplot";
    return false;
  }
  std::fprintf(gp,
               "set terminal pngcairo size 1200,800 noenhanced\n"
               "set output '%s'\n"
               "set title 'impbench messages %s: throughput at the receiver'\n"
               "set xlabel 'devices'\nset ylabel 'messages per second'\n"
               "set logscale x\nset key outside right\nset grid\n",
               file.c_str(), report.date.c_str());
  std::string plot = "plot ";
  int block = 0;
  for (const auto& [name, points] : series) {
    for (int path = 0; path < 2; ++path) {
      std::fprintf(gp, "$d%d << EOD\n", block);
      for (const auto& [devices, rates] : points) {
        std::fprintf(gp, "%zu %f\n", devices, path == 0 ? rates.first : rates.second);
      }
      std::fprintf(gp, "EOD\n");
      if (block > 0) plot += ", ";
      plot += "$d" + std::to_string(block) + " with linespoints dt " + (path == 0 ? "1" : "2") +
              " lc " + std::to_string(block / 2 + 1) + " title '" + name +
              (path == 0 ? " impgate'" : " direct'");
      ++block;
    }
  }
  std::fprintf(gp, "%s\n", plot.c_str());
  int status = ::pclose(gp);
  if (status != 0) {
    error = "gnuplot failed (exit status " + std::to_string(status) + ")";
    return false;
  }
  return true;
}

}  // namespace impgate::bench
