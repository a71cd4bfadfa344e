#include "sampler.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "error.h"

namespace weft {

namespace {

constexpr float kMasked = -std::numeric_limits<float>::infinity();

// The head: the first tokens of the canonical order, selected and sorted when sampling. It holds
// the nucleus and the drawn token for all but flat distributions; past it nothing is sorted (a
// top-p cut there is found by binning, and survivors there are walked by id).
constexpr int32_t kHead = 256;

// mass_cut's histogram: 1/64-logit bins over the 64 logits below the head (a token further down
// weighs under e^-64 of the head's last and can only matter through rounding).
constexpr int32_t kBins = 4096;
constexpr float kBinsPerLogit = 64.0f;

// ---- randomness --------------------------------------------------------------------------------

// splitmix64's output function: a bijection on 64 bits with full avalanche.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ULL;  // 2^64 / golden ratio, odd

// ---- logits ------------------------------------------------------------------------------------

// Selects and predicates below work on bits or combine bools with & and |: GCC will not
// vectorize a branch or a float select that guards float arithmetic unless -fno-trapping-math,
// which the build does not set.
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// NaN and +inf carry no usable ranking (they come from overflow in the forward pass), so they are
// masked like -inf rather than allowed to take all the mass or to break the sort's ordering.
inline float clean(float v) { return (float_to_bits(v) & 0x7fffffffu) < 0x7f800000u ? v : kMasked; }

// Strictly earlier in the canonical order (ids are distinct, so the order is total).
inline bool before(float la, int32_t ia, float lb, int32_t ib) { return (la > lb) | ((la == lb) & (ia < ib)); }

// The vocabulary-wide passes below vectorize; where the compiler can pick a clone at load time
// (GCC/Clang on x86-64 Linux, through an ifunc) they are also built for AVX2, without FMA so that
// both builds do the very same float operations and sample the same tokens (checked: identical
// tokens, log-probs and confidences either way). 8 lanes instead of SSE2's 4 halve a sample
// (bench-sampler on the 2-core AMD EPYC dev VM: greedy over 49,152 logits 111 -> 59 us; with the
// tail walk below, temperature 0.7 over 151,936 logits 778 -> 401 us).
// A helper they call is built for AVX2 only where it is inlined into them, hence
// WEFT_VOCAB_INLINE on sum_exp (which is called from three places).
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define WEFT_VOCAB_PASS __attribute__((target_clones("avx2", "default")))
#define WEFT_VOCAB_INLINE inline __attribute__((always_inline))
#else
#define WEFT_VOCAB_PASS
#define WEFT_VOCAB_INLINE inline
#endif

// exp(x) for x <= 0 within a few ulp, branch-free so loops over it vectorize: libm's expf is a
// call per element (about 3.4 ns each, most of a 152k-vocabulary sample). Results below exp(-86)
// flush to 0, which also keeps 2^n normal: such a weight is under 1e-37 of the top token's, so
// no 53-bit uniform can select it, and log-probs are taken from logits, never from this.
inline float exp_nonpos(float x) {
  const uint32_t keep = 0u - uint32_t(x >= -86.0f);  // all ones, or 0 for -inf and NaN too
  const float xc = bits_to_float(float_to_bits(x) & keep);
  // x = n*ln2 + r with n = round(x/ln2), |r| <= ln2/2. Adding 1.5*2^23 rounds to an integer
  // (default rounding mode) and leaves n in the low mantissa bits of t.
  constexpr float kRound = 12582912.0f;
  const float t = xc * 1.44269504f + kRound;
  const float n = t - kRound;
  // ln2 split in two (the high part has 14 significant bits) so n*ln2_hi is exact.
  const float r = (xc - n * 0.693145751953125f) - n * 1.428606820309417e-6f;
  // Taylor series to r^7: the remainder is below 6e-9 relative for |r| <= ln2/2.
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float scale = bits_to_float((float_to_bits(t) - float_to_bits(kRound) + 127u) << 23);  // 2^n, n in [-124, 0]
  return bits_to_float(float_to_bits(p * scale) & keep);
}

// Sum of exp((clean(l_i) - lmax) * scale) over the tokens i with keep(l_i, i); every term is in
// [0, 1]. Float lanes over short blocks vectorize; each block then goes into a double, so the
// float rounding error stays that of a 32-term sum (< 2e-6 relative) whatever the vocabulary.
template <class Keep>
WEFT_VOCAB_INLINE double sum_exp(const float* logits, int32_t n, float lmax, float scale, Keep keep) {
  constexpr int32_t kLanes = 8, kBlock = 256;
  auto term = [&](int32_t i) {
    const float l = clean(logits[i]);
    return bits_to_float(float_to_bits(exp_nonpos((l - lmax) * scale)) & (0u - uint32_t(keep(l, i))));
  };
  double total = 0.0;
  for (int32_t b = 0; b < n; b += kBlock) {
    const int32_t end = std::min(n, b + kBlock);
    float acc[kLanes] = {};
    int32_t i = b;
    for (; i + kLanes <= end; i += kLanes) {
      for (int32_t j = 0; j < kLanes; ++j) acc[j] += term(i + j);
    }
    for (; i < end; ++i) acc[0] += term(i);
    for (float a : acc) total += a;
  }
  return total;
}

}  // namespace

double sampler_uniform(uint64_t seed, uint64_t counter) {
  // Each seed starts its own splitmix64 stream at a scrambled point, so nearby seeds give
  // unrelated streams; counter steps along it. The top 53 bits make the double.
  const uint64_t x = mix64(mix64(seed + kGamma) + (counter + 1) * kGamma);
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}

Sampler::Sampler(int32_t n_vocab, int32_t conf_k) : n_vocab_(n_vocab), conf_k_(conf_k) {
  if (n_vocab < 1) fail(ErrorCode::InvalidArgument, "sampler vocabulary size must be >= 1, got " + std::to_string(n_vocab));
  if (conf_k < 1) fail(ErrorCode::InvalidArgument, "confidence k must be >= 1, got " + std::to_string(conf_k));
  conf_k_ = std::min(conf_k, n_vocab);
  cand_.resize(static_cast<size_t>(n_vocab));
  bin_mass_.resize(kBins + 1);
}

// ---- selection -----------------------------------------------------------------------------------

// cand_[0, m) := the first m tokens of the canonical order, sorted, in O(n + m log m): a buffer
// holds the best m so far plus newcomers that beat the m-th best; when it reaches 2m it is cut
// back to m with nth_element. Blocks with no newcomer, nearly all of them for typical logits,
// cost one vectorized compare; it stays O(n) amortised even when every token is a newcomer.
WEFT_VOCAB_PASS void Sampler::select_top(const float* logits, int32_t m) {
  constexpr int32_t kScan = 32;
  const int32_t n = n_vocab_;
  Candidate* c = cand_.data();
  auto cmp = [](const Candidate& a, const Candidate& b) { return before(a.logit, a.id, b.logit, b.id); };
  for (int32_t i = 0; i < m; ++i) c[i] = {clean(logits[i]), i};
  int32_t size = m;
  const int32_t cap = static_cast<int32_t>(std::min<int64_t>(n, int64_t(m) * 2));
  // Tokens are scanned by increasing id, so a newcomer tying the m-th best loses to it: only a
  // strictly greater logit gets in.
  float threshold = c[0].logit;
  for (int32_t i = 1; i < m; ++i) threshold = std::min(threshold, c[i].logit);
  for (int32_t b = m; b < n; b += kScan) {
    const int32_t end = std::min(n, b + kScan);
    uint32_t any = 0;
    for (int32_t i = b; i < end; ++i) any |= uint32_t(clean(logits[i]) > threshold);
    if (!any) continue;
    for (int32_t i = b; i < end; ++i) {
      const float v = clean(logits[i]);
      if (v <= threshold) continue;
      c[size++] = {v, i};
      if (size == cap) {
        std::nth_element(c, c + (m - 1), c + size, cmp);
        size = m;
        threshold = c[m - 1].logit;
      }
    }
  }
  if (size > m) std::nth_element(c, c + (m - 1), c + size, cmp);
  std::sort(c, c + m, cmp);
}

// The token after cand_[sorted - 1] in the canonical order at which the temperature-1 weight
// exp(l - lmax), summed along the order from there, first reaches `mass`; {-inf, INT32_MAX}
// (everything) when rounding leaves it unreached. One pass bins those tokens by logit, a second
// gathers the single bin where the running mass crosses and sorts only that bin. The edge must
// not be masked.
WEFT_VOCAB_PASS Sampler::Candidate Sampler::mass_cut(const float* logits, int32_t sorted, double mass, float lmax) {
  const int32_t n = n_vocab_;
  const Candidate edge = cand_[sorted - 1];
  // Per block (vectorized): each token's weight, and its bin, or kBins (a sink) for a token
  // before the edge or of zero weight, which can neither add mass nor be where the sum crosses.
  constexpr int32_t kBlock = 256;
  float w[kBlock];
  int32_t where[kBlock];
  auto fill_block = [&](int32_t b, int32_t len) {
    for (int32_t j = 0; j < len; ++j) {
      const float l = clean(logits[b + j]);
      w[j] = exp_nonpos(l - lmax);
      const float d = (edge.logit - l) * kBinsPerLogit;  // < 0 before the edge, +inf if masked
      const int32_t bin = d < float(kBins - 1) ? (d > 0.0f ? static_cast<int32_t>(d) : 0) : kBins - 1;
      where[j] = (before(edge.logit, edge.id, l, b + j) & (w[j] > 0.0f)) ? bin : kBins;
    }
  };
  std::fill(bin_mass_.begin(), bin_mass_.end(), 0.0);
  for (int32_t b = 0; b < n; b += kBlock) {
    const int32_t len = std::min(kBlock, n - b);
    fill_block(b, len);
    for (int32_t j = 0; j < len; ++j) bin_mass_[size_t(where[j])] += w[j];
  }
  int32_t bin = 0;
  for (; bin < kBins && bin_mass_[size_t(bin)] < mass; ++bin) mass -= bin_mass_[size_t(bin)];
  if (bin == kBins) return {kMasked, std::numeric_limits<int32_t>::max()};

  // Bin `bin` has weight >= mass > 0: gather and sort just its tokens.
  Candidate* c = cand_.data() + sorted;  // past the head: at most n - sorted tokens follow it
  int32_t k = 0;
  for (int32_t b = 0; b < n; b += kBlock) {
    const int32_t len = std::min(kBlock, n - b);
    fill_block(b, len);
    for (int32_t j = 0; j < len; ++j) {
      if (where[j] == bin) c[k++] = {clean(logits[b + j]), b + j};
    }
  }
  std::sort(c, c + k, [](const Candidate& x, const Candidate& y) { return before(x.logit, x.id, y.logit, y.id); });
  double cum = 0.0;
  for (int32_t j = 0; j < k; ++j) {
    cum += exp_nonpos(c[j].logit - lmax);
    if (cum >= mass) return c[j];
  }
  return c[k - 1];  // the bin's total and this running sum differ by rounding
}

// ---- the draw -------------------------------------------------------------------------------------

// Survivors of the filters are the canonical prefix up to `last`, minus tokens under `floor`.
// The draw walks their cumulative weight: the head's survivors in canonical order, then any
// survivors beyond the head by increasing id. That is an exact inverse CDF and a pure function
// of the logits and (seed, counter), and it needs no sort beyond the head.
WEFT_VOCAB_PASS int32_t Sampler::draw(const float* logits, const SamplingParams& p, double sum_exp1, int32_t sorted) {
  const int32_t n = n_vocab_;
  const float lmax = cand_[0].logit;
  const bool top_k_on = p.top_k > 0 && p.top_k < n;
  Candidate last = {kMasked, std::numeric_limits<int32_t>::max()};  // everything
  float floor = kMasked;
  const bool filtered = top_k_on || p.top_p < 1.0f || p.min_p > 0.0f;

  if (top_k_on) last = cand_[p.top_k - 1];
  if (p.top_p < 1.0f) {
    // Smallest prefix whose temperature-1 mass, renormalised over the current candidates,
    // reaches top_p; compared unnormalised against top_p * z.
    const int32_t limit = top_k_on ? p.top_k : sorted;
    double z = sum_exp1;
    if (top_k_on) {
      z = 0.0;
      for (int32_t i = 0; i < limit; ++i) z += exp_nonpos(cand_[i].logit - lmax);
    }
    const double target = double(p.top_p) * z;
    double cum = 0.0;
    int32_t i = 0;
    while (i < limit && (cum += exp_nonpos(cand_[i].logit - lmax)) < target) ++i;
    if (i < limit) {
      last = cand_[i];
    } else if (!top_k_on && sorted < n && cand_[sorted - 1].logit > kMasked) {
      // (Behind a masked token come only masked ones, which add no mass.)
      last = mass_cut(logits, sorted, target - cum, lmax);
    }
  }
  if (p.min_p > 0.0f) {
    // p_i >= min_p * p_max  <=>  l_i >= l_max + log(min_p), tested in float as llama.cpp does.
    // The top token always stays, also when min_p > 1.
    floor = lmax + std::log(p.min_p);
    if (floor > lmax) {
      last = cand_[0];
      floor = kMasked;
    }
  }
  auto keep = [&](float l, int32_t i) { return !before(last.logit, last.id, l, i) & (l >= floor); };

  // Temperature: weights exp((l - l_max) / T). 1/T is capped so a tiny T gives weight 1 to the
  // top logit(s) and 0 elsewhere instead of 0 * inf = NaN.
  const float inv_t = static_cast<float>(std::min(1.0 / double(p.temperature), double(FLT_MAX)));
  auto weight = [&](float l) { return exp_nonpos((l - lmax) * inv_t); };

  // The head is sorted: all of it, or (top_k < kHead) at least every survivor.
  const int32_t head = std::min(sorted, kHead);
  double total = 0.0;
  int32_t h = 0;  // survivors in the head: a prefix of it
  while (h < head && keep(cand_[h].logit, cand_[h].id)) total += weight(cand_[h++].logit);
  const Candidate edge = cand_[head - 1];
  // Survivors of non-zero weight lie beyond the head only if the whole head survived, `last` lies
  // beyond it, and its last token is neither masked nor under the floor.
  const bool tail = h == head && head < n && before(edge.logit, edge.id, last.logit, last.id) && edge.logit > kMasked &&
                    edge.logit >= floor;
  auto in_tail = [&](float l, int32_t i) { return before(edge.logit, edge.id, l, i) & keep(l, i); };
  if (tail) {
    // Unfiltered, the unmasked sum over everything is the cheaper pass.
    total = filtered ? total + sum_exp(logits, n, lmax, inv_t, in_tail)
                     : sum_exp(logits, n, lmax, inv_t, [](float, int32_t) { return true; });
  }

  const double target = sampler_uniform(p.seed, p.counter) * total;
  double cum = 0.0;
  int32_t chosen = cand_[0].id;  // the last token of non-zero weight walked
  for (int32_t i = 0; i < h; ++i) {
    const float w = weight(cand_[i].logit);
    if (w == 0.0f) break;  // weights only fall along the canonical order
    cum += w;
    chosen = cand_[i].id;
    if (cum > target) return chosen;
  }
  if (tail) {
    // Each block's weights first (vectorized; 0 for a token not in the tail), then the walk.
    constexpr int32_t kBlock = 256;
    float w[kBlock];
    for (int32_t b = 0; b < n; b += kBlock) {
      const int32_t len = std::min(kBlock, n - b);
      for (int32_t j = 0; j < len; ++j) {
        const float l = clean(logits[b + j]);
        w[j] = bits_to_float(float_to_bits(weight(l)) & (0u - uint32_t(in_tail(l, b + j))));
      }
      for (int32_t j = 0; j < len; ++j) {
        if (w[j] == 0.0f) continue;
        cum += w[j];
        chosen = b + j;
        if (cum > target) return chosen;
      }
    }
  }
  return chosen;  // rounding left the target just past the summed weight
}

// ---- sample -------------------------------------------------------------------------------------

WEFT_VOCAB_PASS SampleResult Sampler::sample(const float* logits, const SamplingParams& p, int32_t* top_ids, float* top_logprobs) {
  if (logits == nullptr) fail(ErrorCode::InvalidArgument, "sampler got no logits");
  if (p.n_top < 0 || p.n_top > n_vocab_) {
    fail(ErrorCode::InvalidArgument, "n_top must be in [0, " + std::to_string(n_vocab_) + "], got " + std::to_string(p.n_top));
  }
  if (p.n_top > 0 && (top_ids == nullptr || top_logprobs == nullptr)) {
    fail(ErrorCode::InvalidArgument, "n_top > 0 needs top_ids and top_logprobs buffers");
  }
  if (std::isnan(p.temperature) || p.temperature == std::numeric_limits<float>::infinity()) {
    fail(ErrorCode::InvalidArgument, "temperature must be finite, got " + std::to_string(p.temperature));
  }
  if (!(p.top_p > 0.0f)) fail(ErrorCode::InvalidArgument, "top_p must be > 0, got " + std::to_string(p.top_p));
  if (std::isnan(p.min_p)) fail(ErrorCode::InvalidArgument, "min_p must be a number, got NaN");

  const bool greedy = !(p.temperature > 0.0f);
  int32_t sorted = std::max(conf_k_, p.n_top);
  if (!greedy) sorted = std::max(sorted, p.top_k > 0 ? std::min(p.top_k, n_vocab_) : std::min(n_vocab_, kHead));
  select_top(logits, sorted);

  const float lmax = cand_[0].logit;
  SampleResult r;
  if (lmax == kMasked) {
    // Every logit masked: no distribution exists. Report the lowest id (greedy's tie rule) with
    // log-prob -inf and confidence 0 (a mean over no tokens) rather than fail the whole batch.
    for (int32_t i = 0; i < p.n_top; ++i) {
      top_ids[i] = cand_[i].id;
      top_logprobs[i] = kMasked;
    }
    r.token = 0;
    r.logprob = kMasked;
    r.confidence = 0.0f;
    return r;
  }

  const double sum_exp1 = sum_exp(logits, n_vocab_, lmax, 1.0f, [](float, int32_t) { return true; });
  const double log_z = double(lmax) + std::log(sum_exp1);
  auto logprob = [log_z](float l) { return static_cast<float>(double(l) - log_z); };  // -inf stays -inf

  // Confidence over the top conf_k tokens that have non-zero probability (masked ones sort last):
  // a masked token's log p is -inf, which would make C infinite and poison the means taken of it.
  double sum_lp = 0.0;
  int32_t k = 0;
  for (; k < conf_k_ && cand_[k].logit != kMasked; ++k) sum_lp += double(cand_[k].logit) - log_z;
  r.confidence = static_cast<float>(-sum_lp / k);  // k >= 1: the top logit is finite

  for (int32_t i = 0; i < p.n_top; ++i) {
    top_ids[i] = cand_[i].id;
    top_logprobs[i] = logprob(cand_[i].logit);
  }

  r.token = greedy ? cand_[0].id : draw(logits, p, sum_exp1, sorted);
  r.logprob = logprob(clean(logits[r.token]));
  return r;
}

}  // namespace weft
