// The fleet a benchmark run connects: a throw-away impgate home with a fresh fleet CA, the
// gateway's server credential and one credential per device (ids bench-00001, ...), loaded
// into memory once and shared by every phase, so impgate, mosquitto and the in-memory OpenSSL
// baseline all see the same certificates.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gateway/base/home.h"
#include "gateway/device/device_credentials.h"

namespace impgate::bench {

class BenchFleet {
 public:
  // Creates the CA in `root` and issues `devices` credentials. nullptr with `error` on failure
  // or interruption. Progress goes to stderr for large fleets.
  static std::unique_ptr<BenchFleet> create(const std::filesystem::path& root, std::size_t devices,
                                            std::string& error);

  const Home& home() const { return home_; }
  std::size_t size() const { return ids_.size(); }
  const std::string& id(std::size_t i) const { return ids_[i]; }
  const std::shared_ptr<device::DeviceCredentials>& credentials(std::size_t i) const {
    return credentials_[i];
  }

 private:
  explicit BenchFleet(Home home) : home_(std::move(home)) {}

  Home home_;
  std::vector<std::string> ids_;
  std::vector<std::shared_ptr<device::DeviceCredentials>> credentials_;
};

}  // namespace impgate::bench
