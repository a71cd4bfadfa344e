// Anonymous memory for weights that decode streams: 2 MiB-aligned and, where the kernel's
// transparent-huge-page mode allows, on 2 MiB pages (gguf.cc says what that buys).
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft {

class HugeRegion {
 public:
  // `size` bytes, zeroed. Throws weft::Error (InvalidArgument, naming `purpose`) when the memory
  // cannot be had.
  HugeRegion(size_t size, const char* purpose);
  ~HugeRegion();
  HugeRegion(const HugeRegion&) = delete;
  HugeRegion& operator=(const HugeRegion&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Read-only from now on, as weights mapped from a file are.
  void seal() const;

 private:
  void* region_ = nullptr;  // what to munmap: data_ plus the room to align it
  size_t region_size_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace weft
