#include "tools/impbench/bench_fleet.h"

#include <cstdio>

#include "gateway/base/pki/fleet_ca.h"
#include "tools/impbench/interrupt.h"
#include "tools/impbench/progress.h"

namespace impgate::bench {
namespace {

constexpr std::size_t kProgressEvery = 2000;

std::string deviceId(std::size_t index) {
  char id[32];
  std::snprintf(id, sizeof id, "bench-%05zu", index + 1);
  return id;
}

}  // namespace

std::unique_ptr<BenchFleet> BenchFleet::create(const std::filesystem::path& root,
                                               std::size_t devices, std::string& error) {
  std::unique_ptr<BenchFleet> fleet(new BenchFleet(Home(root)));
  auto ca = pki::FleetCa::init(fleet->home_, pki::InitOptions{});
  if (!ca) {
    error = "fleet CA: " + ca.error().message;
    return nullptr;
  }
  fleet->ids_.reserve(devices);
  fleet->credentials_.reserve(devices);
  for (std::size_t i = 0; i < devices; ++i) {
    if (interrupted()) {
      error = "interrupted";
      return nullptr;
    }
    std::string id = deviceId(i);
    auto issued = ca->issueDevice(id);
    if (!issued) {
      error = "issue " + id + ": " + issued.error().message;
      return nullptr;
    }
    auto credentials =
        device::DeviceCredentials::load(issued->certPath.string(), issued->keyPath.string());
    if (!credentials) {
      error = credentials.error().message;
      return nullptr;
    }
    fleet->ids_.push_back(std::move(id));
    fleet->credentials_.push_back(std::move(*credentials));
    if ((i + 1) % kProgressEvery == 0) {
      progress("issued %zu/%zu device credentials", i + 1, devices);
    }
  }
  return fleet;
}

}  // namespace impgate::bench
