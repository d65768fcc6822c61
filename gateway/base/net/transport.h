// The byte transport under a connection.
//
// Protocol code (sessions, the device SDK) reads and writes plain bytes through this interface
// and never sees OpenSSL. TLS is the only implementation today; the interface is kept narrow
// so that what is kept per connection after the handshake can later be replaced (for example
// by bare TLS 1.3 record keys) without touching the protocol code.
//
// A transport does not own its socket: the connection owns the fd and closes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace impgate::net {

enum class IoStatus : uint8_t {
  kOk,         // progress was made (bytes > 0, or the handshake completed)
  kWantRead,   // retry when the socket is readable
  kWantWrite,  // retry when the socket is writable
  kClosed,     // the peer closed the stream cleanly
  kError,      // a fatal error; see Transport::lastError()
};

struct IoResult {
  IoStatus status;
  std::size_t bytes = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Drives the handshake; kOk once complete. Call again on kWantRead / kWantWrite.
  virtual IoStatus handshake() = 0;
  // Reads decrypted bytes into `into`. A read may answer kWantWrite (TLS has to send something,
  // e.g. its own KeyUpdate, before it can go on): retry the read when the socket is writable.
  virtual IoResult read(std::span<uint8_t> into) = 0;
  // Writes `from`; on kOk, `bytes` may be less than from.size(). After kWantWrite the same
  // bytes must be offered again (TLS requires the retry to repeat the buffer); after kWantRead
  // likewise, once the socket is readable.
  virtual IoResult write(std::span<const uint8_t> from) = 0;
  // Sends a close notification, best effort, without blocking.
  virtual void shutdown() = 0;

  // The authenticated peer identity after the handshake (device id from the certificate),
  // empty when there is none.
  virtual std::string peerIdentity() const = 0;
  // The device group the peer's certificate names (its one OU), empty when none.
  virtual std::string peerGroup() const { return {}; }
  // True when the handshake resumed an earlier session.
  virtual bool resumed() const = 0;
  // Human-readable reason of the last kError, for logs.
  virtual std::string lastError() const = 0;
  // Called once the connection is established: a transport may release handshake-only state
  // here. TlsTransport keeps everything today: OpenSSL 3.0 has no supported call that drops
  // the peer certificate or the handshake's leftovers from a live SSL object.
  virtual void trimAfterHandshake() {}
  // Starts a key update that also asks the peer to update its keys (TLS 1.3 KeyUpdate,
  // update_requested); it goes out with the next write. False when not supported. Long-lived
  // links may use it; tests use it to make a read need a write.
  virtual bool requestKeyUpdate() { return false; }
};

}  // namespace impgate::net
