// Operator log: one line per event, key=value pairs, written to stderr.
//
// The log is for operators and may be shipped anywhere, so it must never hold
// health data or secrets. Callers pass an event name and fields chosen from
// safe values (route templates, status codes, counts, file names, durations).
// Never pass a resource body, a patient id, a search value, a token or a key.
//
// Thread-safety: every function is safe to call from any thread; each line is
// written with one write(2) so lines never interleave.
#ifndef PHIVAULT_COMMON_LOG_H_
#define PHIVAULT_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace phivault::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

using Field = std::pair<std::string_view, std::string>;

void SetMinLevel(Level level);
// Redirects output to the given file descriptor (default 2). Tests use it to
// capture the log and scan it for health data.
void SetFd(int fd);

void Write(Level level, std::string_view event, std::initializer_list<Field> fields = {});

inline void Info(std::string_view event, std::initializer_list<Field> fields = {}) { Write(Level::kInfo, event, fields); }
inline void Warn(std::string_view event, std::initializer_list<Field> fields = {}) { Write(Level::kWarn, event, fields); }
inline void Error(std::string_view event, std::initializer_list<Field> fields = {}) { Write(Level::kError, event, fields); }
inline void Debug(std::string_view event, std::initializer_list<Field> fields = {}) { Write(Level::kDebug, event, fields); }

}  // namespace phivault::log

#endif  // PHIVAULT_COMMON_LOG_H_
