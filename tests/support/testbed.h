// The test bed (tools/testbed: child processes, a real mosquitto or aedes, temp dirs, free
// ports) under the names tests use, in impgate::testing. impbench uses the same library, since a
// tool cannot link test support.
#pragma once

#include "tools/testbed/aedes_broker.h"
#include "tools/testbed/child_process.h"
#include "tools/testbed/free_port.h"
#include "tools/testbed/mosquitto_broker.h"
#include "tools/testbed/tcp_table.h"
#include "tools/testbed/temp_dir.h"

namespace impgate::testing {

using testbed::acceptsConnections;
using testbed::ChildProcess;
using testbed::establishedTo;
using testbed::freeLoopbackPort;
using testbed::isListening;
using testbed::readWholeFile;
using testbed::TempDir;
// One real broker per test, on a free loopback port, torn down with the test.
using MosquittoFixture = testbed::MosquittoBroker;
// A real aedes per test: a broker that speaks MQTT 3.1.1 only (refuses an MQTT 5 CONNECT).
using AedesFixture = testbed::AedesBroker;

}  // namespace impgate::testing
