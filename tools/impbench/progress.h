// Progress lines on stderr ("impbench [  12.3 s] ..."), stamped with the time since the run
// started, so a slow step shows where the time went. stdout stays free for the report.
#pragma once

namespace impgate::bench {

// printf-style; a newline is added.
void progress(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace impgate::bench
