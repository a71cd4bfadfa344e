#include "huge-region.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "error.h"

namespace weft {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

HugeRegion::HugeRegion(size_t size, const char* purpose) : size_(size) {
  region_size_ = (size + kHugePage - 1) / kHugePage * kHugePage + kHugePage;  // + room to align
  void* region = mmap(nullptr, region_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED) {
    fail(ErrorCode::InvalidArgument, "cannot allocate " + std::to_string(size) + " bytes for " + purpose + " (" +
                                         std::strerror(errno) + ")");
  }
  region_ = region;
  const uintptr_t at = (reinterpret_cast<uintptr_t>(region) + kHugePage - 1) & ~uintptr_t{kHugePage - 1};
  data_ = reinterpret_cast<uint8_t*>(at);
  madvise(data_, size_, MADV_HUGEPAGE);  // advice only: EINVAL where THP is compiled out
}

HugeRegion::~HugeRegion() { munmap(region_, region_size_); }

void HugeRegion::seal() const { mprotect(data_, size_, PROT_READ); }

}  // namespace weft
