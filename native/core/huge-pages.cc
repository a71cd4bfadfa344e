#include "huge-pages.h"

#include <sys/mman.h>

namespace weft {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

HugeRegion::HugeRegion(size_t size) {
  region_size_ = (size + kHugePage - 1) / kHugePage * kHugePage + kHugePage;  // + room to align
  void* region = mmap(nullptr, region_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED) {
    region_size_ = 0;
    return;
  }
  region_ = region;
  data_ = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(region) + kHugePage - 1) & ~uintptr_t{kHugePage - 1});
  madvise(data_, size, MADV_HUGEPAGE);  // advice only: EINVAL where THP is compiled out
}

HugeRegion& HugeRegion::operator=(HugeRegion&& o) noexcept {
  if (this != &o) {
    release();
    region_ = o.region_;
    region_size_ = o.region_size_;
    data_ = o.data_;
    o.region_ = nullptr;
    o.region_size_ = 0;
    o.data_ = nullptr;
  }
  return *this;
}

void HugeRegion::release() {
  if (region_) munmap(region_, region_size_);
  region_ = nullptr;
  data_ = nullptr;
}

}  // namespace weft
