// GGUF v2/v3 reader over a read-only memory map.
//
// Everything read from the file is validated before use: header counts, string and array
// lengths, tensor ranks, dimensions, types, offsets and alignment, and that every tensor's data
// lies inside the file. Any violation throws weft::Error (E_MODEL_FORMAT, or E_UNSUPPORTED for a
// well-formed file using something we do not know, such as GGUF v1 or an unknown tensor type).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ggml-types.h"
#include "huge-pages.h"

namespace weft {

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

const char* gguf_type_name(GgufType t);

// One metadata value. Scalars are widened into u/i/f/b/s; arrays keep their element type and,
// for numeric and bool elements, point at the raw little-endian bytes inside the map.
struct GgufValue {
  GgufType type = GgufType::UINT8;
  uint64_t u = 0;   // UINT*, BOOL
  int64_t i = 0;    // INT*
  double f = 0;     // FLOAT*
  std::string s;    // STRING
  // ARRAY
  GgufType elem_type = GgufType::UINT8;
  uint64_t n_elems = 0;
  const uint8_t* elems = nullptr;        // numeric/bool arrays: n_elems * element size bytes
  std::vector<std::string> strings;      // string arrays
  std::vector<GgufValue> items;          // arrays of arrays

  bool is_integer() const;
  bool is_float() const { return type == GgufType::FLOAT32 || type == GgufType::FLOAT64; }
  // Numeric scalar as int64/double; throws E_MODEL_FORMAT if the value is not numeric.
  int64_t as_int(const std::string& key) const;
  double as_double(const std::string& key) const;
};

struct GgufTensor {
  std::string name;
  GgmlType type;
  int n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] = row length
  uint64_t offset = 0;           // relative to the data section
  const uint8_t* data = nullptr;
  size_t n_bytes = 0;
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
 public:
  // How the file's bytes are held while it is open.
  enum class Access {
    Map,   // mapped (mmap): nothing is read until used, and the page cache is shared
    Read,  // read into anonymous memory on 2 MiB pages where the kernel allows (see gguf.cc)
  };
  // Maps or reads, and parses, the file. Throws weft::Error on any problem.
  static std::unique_ptr<GgufFile> open(const std::string& path, Access access = Access::Map);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  size_t file_size() const { return size_; }
  Access access() const { return access_; }
  const std::string& path() const { return path_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(const std::string& name) const;

  // Access::Read: a writable alias of the tensor bytes at p (a tensor's data), valid until seal()
  // makes the memory read-only again, for rewriting tensors in place (Model packs weights so).
  // Null where the file is mapped: its pages are the page cache's.
  uint8_t* writable(const uint8_t* p);
  void seal();
  // Mapped files: the pages wholly inside [p, p + n) leave this process's memory (they stay in
  // the page cache, and come back if read again), for tensors copied elsewhere. No-op when read.
  void release(const uint8_t* p, size_t n);

 private:
  GgufFile() = default;
  void parse();

  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  Access access_ = Access::Map;
  void* mapping_ = nullptr;  // Access::Map: the file mapping base_ points into
  HugeRegion memory_;        // Access::Read: the memory base_ points into
  bool unsealed_ = false;    // memory_ writable (between writable() and seal())
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace weft
