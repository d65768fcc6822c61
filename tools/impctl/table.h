// A plain text table for impctl's human output: columns as wide as their widest cell, two
// spaces apart, no trailing spaces. A value; one thread.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace impgate::impctl {

class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // The header and every row, one line each.
  void print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace impgate::impctl
