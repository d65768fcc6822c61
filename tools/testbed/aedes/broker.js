// An MQTT 3.1.1-only broker for impgate's integration tests: aedes (in memory) on a loopback
// port. Started and stopped by tools/testbed/aedes_broker.cc (AedesBroker), one per test.
//
//   node broker.js PORT      listens on 127.0.0.1:PORT; 0 lets the kernel pick a free port
//
// Once listening it prints one line `aedes <version> ready on 127.0.0.1:<port>` (what the test
// bed waits for and reads the port from); then one line per connection, refusal, subscription
// and disconnection, for the test's failure messages. SIGTERM or SIGINT close every client and
// exit 0. aedes answers an MQTT 5 CONNECT with CONNACK return code 1 (unacceptable protocol
// version), the way a 3.1.1-only broker does: that is why the tests use it.
'use strict'

const net = require('net')
const aedesVersion = require('aedes/package.json').version
const broker = require('aedes')()

function log (text) {
  // One write per line: stdout is a file (the test's log), written synchronously by Node.
  process.stdout.write(`${new Date().toISOString()} ${text}\n`)
}

const arg = process.argv[2]
const port = Number(arg)
if (arg === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write('usage: node broker.js PORT (0-65535; 0 picks a free port)\n')
  process.exit(2)
}

broker.on('client', (client) => {
  log(`client connected ${client.id} (MQTT protocol level ${client.version})`)
})
broker.on('clientDisconnect', (client) => {
  log(`client disconnected ${client.id}`)
})
broker.on('connectionError', (client, err) => {
  // A CONNECT the broker refused (an MQTT 5 one among them), or a connection that broke
  // before CONNECT completed.
  log(`connection refused or failed before CONNECT completed: ${err.message}`)
})
broker.on('clientError', (client, err) => {
  log(`client error ${client.id}: ${err.message}`)
})
broker.on('subscribe', (subscriptions, client) => {
  for (const s of subscriptions) log(`client ${client.id} subscribed ${s.topic} qos ${s.qos}`)
})
broker.on('unsubscribe', (topics, client) => {
  for (const t of topics) log(`client ${client.id} unsubscribed ${t}`)
})

const server = net.createServer(broker.handle)
server.on('error', (err) => {
  // Most often the port was taken; the test bed sees the exit and tells.
  process.stderr.write(`aedes: cannot listen on 127.0.0.1:${port}: ${err.message}\n`)
  process.exit(1)
})
server.listen(port, '127.0.0.1', () => {
  log(`aedes ${aedesVersion} ready on 127.0.0.1:${server.address().port}`)
})

let stopping = false
function stop (signal) {
  if (stopping) return
  stopping = true
  log(`${signal}: stopping`)
  server.close()
  // Closes every client connection; without it server.close() would wait for them.
  broker.close(() => process.exit(0))
  // A client that never lets go does not keep the broker alive.
  setTimeout(() => process.exit(0), 1000).unref()
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
