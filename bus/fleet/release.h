// Release: the retained messages that put a version, a deployment or a group assignment on the
// bus, built from the code and the fleet's signing key. impctl publishes them; gateway nodes
// publish the same bytes again from their cache when a broker has lost them; tests and impbench
// use them to stand up a fleet without impctl.
//
// Pure functions (hashing and signing in memory); any thread.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "bus/fleet/descriptors.h"
#include "bus/topics/topic_scheme.h"

namespace impgate::bus::fleet {

// One retained publish.
struct Publication {
  std::string topic;
  std::string payload;
};

// The descriptor of `code` (1..kMaxCodeSize bytes, checked by the caller): its hash, its
// content-defined chunks, and the code signature made with `signingKey` (Ed25519, private).
VersionDescriptor describeVersion(std::span<const uint8_t> code, EVP_PKEY* signingKey,
                                  std::string note, std::string author, int64_t createdAtMs);

// Every distinct chunk of `code` (raw bytes) and then its descriptor, in that order, so that a
// node that sees the descriptor finds the chunks already there.
std::vector<Publication> versionPublications(const TopicScheme& topics,
                                             std::span<const uint8_t> code,
                                             const VersionDescriptor& version);

// The signed envelopes of a deployment and of a group assignment.
Publication deploymentPublication(const TopicScheme& topics, const DeploymentBody& body,
                                  EVP_PKEY* signingKey);
Publication assignmentPublication(const TopicScheme& topics, const GroupAssignment& assignment,
                                  EVP_PKEY* signingKey);

}  // namespace impgate::bus::fleet
