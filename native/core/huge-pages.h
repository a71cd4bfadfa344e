// Anonymous memory on 2 MiB pages, for the big buffers that are streamed through every step (the
// weights when read into memory, the KV pool): such a stream needs 512x fewer TLB entries and page
// walks than on 4 KiB pages. MADV_HUGEPAGE asks for them where the kernel's transparent huge page
// mode is "madvise" (Debian's default); with "never" the memory still works, on 4 KiB pages.
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft {

class HugeRegion {
 public:
  HugeRegion() = default;
  // `size` zeroed, writable bytes at a 2 MiB-aligned data(); data() is null (errno set) where
  // the memory cannot be had.
  explicit HugeRegion(size_t size);
  HugeRegion(HugeRegion&& o) noexcept { *this = static_cast<HugeRegion&&>(o); }
  HugeRegion& operator=(HugeRegion&& o) noexcept;
  HugeRegion(const HugeRegion&) = delete;
  HugeRegion& operator=(const HugeRegion&) = delete;
  ~HugeRegion() { release(); }

  uint8_t* data() const { return data_; }

 private:
  void release();

  void* region_ = nullptr;  // what to munmap: data_ plus the slack that aligned it
  size_t region_size_ = 0;
  uint8_t* data_ = nullptr;
};

}  // namespace weft
