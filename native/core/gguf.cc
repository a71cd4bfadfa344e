#include "gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "error.h"

namespace weft {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr int kMaxArrayDepth = 8;         // nesting real files never approach; bounds recursion
constexpr int kMaxDims = 4;

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  fail(ErrorCode::ModelFormat, "invalid GGUF file '" + path + "': " + what);
}

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    default: return 0;  // STRING, ARRAY: variable size
  }
}

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::FLOAT64); }

// Bounds-checked little-endian cursor over the mapped file.
class Cursor {
 public:
  Cursor(const uint8_t* base, size_t size, const std::string& path) : base_(base), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  const uint8_t* take(size_t n, const char* what) {
    if (n > remaining()) {
      bad(path_, std::string("truncated while reading ") + what + " at byte " + std::to_string(pos_) +
                     " (needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) + " left)");
    }
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }
  template <typename T>
  T read(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }
  std::string string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    if (n > remaining()) {
      bad(path_, std::string(what) + " has length " + std::to_string(n) + " past the end of the file");
    }
    const uint8_t* p = take(static_cast<size_t>(n), what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

void read_value(Cursor& c, GgufType type, GgufValue& v, int depth, const std::string& key, const std::string& path);

void read_array(Cursor& c, GgufValue& v, int depth, const std::string& key, const std::string& path) {
  if (depth >= kMaxArrayDepth) bad(path, "metadata '" + key + "' nests arrays too deeply");
  const uint32_t et = c.read<uint32_t>("array element type");
  if (!valid_value_type(et)) bad(path, "metadata '" + key + "' has unknown array element type " + std::to_string(et));
  v.elem_type = static_cast<GgufType>(et);
  v.n_elems = c.read<uint64_t>("array length");
  const size_t es = scalar_size(v.elem_type);
  if (es > 0) {
    // Check before multiplying: a hostile count must not overflow into a small size.
    if (v.n_elems > c.remaining() / es) {
      bad(path, "metadata '" + key + "' array of " + std::to_string(v.n_elems) + " elements runs past the end of the file");
    }
    v.elems = c.take(static_cast<size_t>(v.n_elems) * es, "array data");
  } else if (v.elem_type == GgufType::STRING) {
    // Every string costs at least its 8-byte length, which bounds the count.
    if (v.n_elems > c.remaining() / 8) bad(path, "metadata '" + key + "' string array count " + std::to_string(v.n_elems) + " is impossible");
    v.strings.reserve(static_cast<size_t>(v.n_elems));
    for (uint64_t k = 0; k < v.n_elems; ++k) v.strings.push_back(c.string("array string"));
  } else {
    if (v.n_elems > c.remaining() / 12) bad(path, "metadata '" + key + "' nested array count " + std::to_string(v.n_elems) + " is impossible");
    v.items.resize(static_cast<size_t>(v.n_elems));
    for (auto& item : v.items) {
      item.type = GgufType::ARRAY;
      read_array(c, item, depth + 1, key, path);
    }
  }
}

void read_value(Cursor& c, GgufType type, GgufValue& v, int depth, const std::string& key, const std::string& path) {
  v.type = type;
  switch (type) {
    case GgufType::UINT8: v.u = c.read<uint8_t>("u8"); break;
    case GgufType::INT8: v.i = c.read<int8_t>("i8"); break;
    case GgufType::UINT16: v.u = c.read<uint16_t>("u16"); break;
    case GgufType::INT16: v.i = c.read<int16_t>("i16"); break;
    case GgufType::UINT32: v.u = c.read<uint32_t>("u32"); break;
    case GgufType::INT32: v.i = c.read<int32_t>("i32"); break;
    case GgufType::UINT64: v.u = c.read<uint64_t>("u64"); break;
    case GgufType::INT64: v.i = c.read<int64_t>("i64"); break;
    case GgufType::FLOAT32: v.f = c.read<float>("f32"); break;
    case GgufType::FLOAT64: v.f = c.read<double>("f64"); break;
    case GgufType::BOOL: {
      const uint8_t b = c.read<uint8_t>("bool");
      if (b > 1) bad(path, "metadata '" + key + "' has bool value " + std::to_string(b));
      v.u = b;
      break;
    }
    case GgufType::STRING: v.s = c.string("string value"); break;
    case GgufType::ARRAY: read_array(c, v, depth, key, path); break;
  }
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < sizeof(names) / sizeof(names[0]) ? names[i] : "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
    case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64:
      return true;
    default: return false;
  }
}

int64_t GgufValue::as_int(const std::string& key) const {
  switch (type) {
    case GgufType::UINT8: case GgufType::UINT16: case GgufType::UINT32: case GgufType::BOOL:
      return static_cast<int64_t>(u);
    case GgufType::UINT64:
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(ErrorCode::ModelFormat, "metadata '" + key + "' value " + std::to_string(u) + " is out of range");
      }
      return static_cast<int64_t>(u);
    case GgufType::INT8: case GgufType::INT16: case GgufType::INT32: case GgufType::INT64:
      return i;
    default:
      fail(ErrorCode::ModelFormat, "metadata '" + key + "' must be an integer, found " + gguf_type_name(type));
  }
}

double GgufValue::as_double(const std::string& key) const {
  if (is_float()) return f;
  return static_cast<double>(as_int(key));
}

namespace {

// Access::Read. Decode streams every weight once per token; on 2 MiB pages (huge-pages.h) that
// stream needs 512x fewer TLB entries and page walks than through a 4 KiB file mapping
// (transparent huge pages for the page cache are not to be had). Decode at batch 1 on this VM:
// median +4% (-5% to +9%, faster in 15 of 18 interleaved A/B pairs over the bench's F16, Q8_0 and
// Q4_K_M files). Returns the memory holding the file's bytes.
HugeRegion read_into_memory(int fd, const std::string& path, size_t size) {
  HugeRegion mem(size);
  if (!mem.data()) {
    fail(ErrorCode::InvalidArgument, "cannot allocate " + std::to_string(size) + " bytes to read '" + path +
                                         "' into (" + std::strerror(errno) + "); load it with useMmap: true");
  }
  uint8_t* data = mem.data();
  size_t done = 0;
  while (done < size) {
    const ssize_t r = pread(fd, data + done, size - done, static_cast<off_t>(done));
    if (r > 0) {
      done += static_cast<size_t>(r);
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      const std::string why = r == 0 ? "the file shrank while it was read" : std::strerror(errno);
      fail(r == 0 ? ErrorCode::ModelFormat : ErrorCode::InvalidArgument, "cannot read model file '" + path + "': " + why);
    }
  }
  mprotect(data, size, PROT_READ);  // weights stay read-only, as through the mapping
  return mem;
}

}  // namespace

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path, Access access) {
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fail(ErrorCode::InvalidArgument, "cannot open model file '" + path + "': " + std::strerror(errno));
  }
  struct CloseOnExit {  // every way out of open() closes fd; a mapping outlives it
    int fd;
    ~CloseOnExit() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    fail(ErrorCode::InvalidArgument, "model path '" + path + "' is not a regular file");
  }
  g->size_ = static_cast<size_t>(st.st_size);
  if (g->size_ == 0) bad(path, "the file is empty");
  g->access_ = access;
  if (access == Access::Read) {
    g->memory_ = read_into_memory(fd, path, g->size_);
    g->base_ = g->memory_.data();
  } else {
    void* p = mmap(nullptr, g->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) fail(ErrorCode::Internal, "mmap of '" + path + "' failed: " + std::strerror(errno));
    g->mapping_ = p;
    g->base_ = static_cast<const uint8_t*>(p);
  }
  g->parse();
  return g;
}

uint8_t* GgufFile::writable(const uint8_t* p) {
  if (access_ != Access::Read) return nullptr;
  if (!unsealed_) {
    if (mprotect(memory_.data(), size_, PROT_READ | PROT_WRITE) != 0) {
      fail(ErrorCode::Internal, std::string("cannot make the model's memory writable: ") + std::strerror(errno));
    }
    unsealed_ = true;
  }
  return memory_.data() + (p - base_);
}

void GgufFile::seal() {
  if (unsealed_) mprotect(memory_.data(), size_, PROT_READ);
  unsealed_ = false;
}

void GgufFile::release(const uint8_t* p, size_t n) {
  if (access_ != Access::Map || n == 0) return;
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = (uintptr_t(p) + page - 1) / page * page, hi = (uintptr_t(p) + n) / page * page;
  if (lo < hi) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);  // advice: a failure costs only memory
}

GgufFile::~GgufFile() {
  if (mapping_) munmap(mapping_, size_);
}

void GgufFile::parse() {
  Cursor c(base_, size_, path_);
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) bad(path_, "wrong magic (not a GGUF file)");
  version_ = c.read<uint32_t>("version");
  if (version_ == 1) fail(ErrorCode::Unsupported, "GGUF version 1 ('" + path_ + "') is not supported; convert it to v3");
  if (version_ > 0xFFFF) fail(ErrorCode::Unsupported, "'" + path_ + "' looks like a big-endian GGUF, which is not supported");
  if (version_ != 2 && version_ != 3) fail(ErrorCode::Unsupported, "GGUF version " + std::to_string(version_) + " is not supported");

  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Smallest encodings: a key/value is >= 8+4+1 bytes, a tensor info >= 8+4+8+4+8.
  if (n_kv > c.remaining() / 13) bad(path_, "metadata count " + std::to_string(n_kv) + " is impossible for the file size");
  if (n_tensors > c.remaining() / 32) bad(path_, "tensor count " + std::to_string(n_tensors) + " is impossible for the file size");

  kv_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.string("metadata key");
    const uint32_t t = c.read<uint32_t>("metadata type");
    if (!valid_value_type(t)) bad(path_, "metadata '" + key + "' has unknown value type " + std::to_string(t));
    GgufValue v;
    read_value(c, static_cast<GgufType>(t), v, 0, key, path_);
    if (!kv_index_.emplace(key, kv_.size()).second) bad(path_, "duplicate metadata key '" + key + "'");
    kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufType::UINT32) bad(path_, "general.alignment must be u32");
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) bad(path_, "general.alignment " + std::to_string(a->u) + " is not a power of two");
    alignment_ = static_cast<size_t>(a->u);
  }

  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = c.string("tensor name");
    const uint32_t nd = c.read<uint32_t>("tensor rank");
    if (nd < 1 || nd > kMaxDims) bad(path_, "tensor '" + t.name + "' has rank " + std::to_string(nd));
    t.n_dims = static_cast<int>(nd);
    int64_t n_el = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const int64_t ne = c.read<int64_t>("tensor dimension");
      if (ne < 1 || ne > (int64_t(1) << 40)) bad(path_, "tensor '" + t.name + "' has dimension " + std::to_string(ne));
      t.ne[d] = ne;
      if (__builtin_mul_overflow(n_el, ne, &n_el)) bad(path_, "tensor '" + t.name + "' element count overflows");
    }
    const uint32_t type_id = c.read<uint32_t>("tensor type");
    const GgmlTypeTraits tr = ggml_type_traits(type_id);
    if (!tr.name) fail(ErrorCode::Unsupported, "tensor '" + t.name + "' in '" + path_ + "' has unknown type id " + std::to_string(type_id));
    t.type = static_cast<GgmlType>(type_id);
    if (t.ne[0] % tr.block != 0) {
      bad(path_, "tensor '" + t.name + "' row length " + std::to_string(t.ne[0]) + " is not a multiple of the " + tr.name +
                     " block size " + std::to_string(tr.block));
    }
    t.n_bytes = static_cast<size_t>(n_el / tr.block) * tr.bytes;
    t.offset = c.read<uint64_t>("tensor offset");
    if (t.offset % alignment_ != 0) bad(path_, "tensor '" + t.name + "' offset " + std::to_string(t.offset) + " is not aligned");
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) bad(path_, "duplicate tensor name '" + t.name + "'");
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  const size_t data_start = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (n_tensors > 0 && data_start > size_) bad(path_, "tensor data section starts past the end of the file");
  const size_t data_size = size_ - std::min(data_start, size_);
  for (auto& t : tensors_) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      bad(path_, "tensor '" + t.name + "' data (offset " + std::to_string(t.offset) + ", " + std::to_string(t.n_bytes) +
                     " bytes) lies past the end of the file");
    }
    t.data = base_ + data_start + t.offset;
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace weft
