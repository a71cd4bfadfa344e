// Sampler tests: statistics against a double-precision reference, the filter chain against
// hand-computed supports, the draw against exact probabilities (seeded, so every run sees the
// same draws), and the edges (ties, masked and non-finite logits, invalid parameters).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/sampler.h"

using weft::Sampler;
using weft::SampleResult;
using weft::SamplingParams;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

int g_checks = 0, g_failed = 0;

void check(bool ok, const std::string& name) {
  ++g_checks;
  if (!ok) ++g_failed;
  std::printf("%s - %s\n", ok ? "ok" : "FAIL", name.c_str());
}

void check_invalid(const std::function<void()>& fn, const std::string& name) {
  bool ok = false;
  try {
    fn();
  } catch (const weft::Error& e) {
    ok = e.code() == weft::ErrorCode::InvalidArgument;
  }
  check(ok, "throws InvalidArgument: " + name);
}

// A float statistic against its double reference: the error budget is a few float roundings
// in the normaliser (1e-6) plus the final rounding of the value to float.
bool close(float got, double want) { return std::fabs(double(got) - want) <= 1e-6 + 1.2e-7 * std::fabs(want); }

std::vector<float> random_logits(int32_t n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> l(static_cast<size_t>(n));
  for (float& x : l) x = dist(rng);
  // A handful of clear favourites, as a language model's logits have.
  for (int i = 0; i < 5; ++i) l[rng() % uint32_t(n)] += 10.0f - 2.0f * float(i);
  return l;
}

SamplingParams temp(float t, uint64_t seed = 7) {
  SamplingParams p;
  p.temperature = t;
  p.seed = seed;
  return p;
}

// ---- reference: straightforward double precision, full sort ------------------------------------

double clean(float v) { return std::isnan(v) || v == kInf ? -double(kInf) : double(v); }

std::vector<int32_t> ref_order(const std::vector<float>& l) {
  std::vector<int32_t> order(l.size());
  for (size_t i = 0; i < l.size(); ++i) order[i] = int32_t(i);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return clean(l[a]) > clean(l[b]) || (clean(l[a]) == clean(l[b]) && a < b);
  });
  return order;
}

std::vector<double> ref_logprobs(const std::vector<float>& l) {
  double mx = -double(kInf);
  for (float v : l) mx = std::max(mx, clean(v));
  double sum = 0.0;
  for (float v : l) sum += std::exp(clean(v) - mx);
  const double log_z = mx + std::log(sum);
  std::vector<double> lp(l.size());
  for (size_t i = 0; i < l.size(); ++i) lp[i] = clean(l[i]) - log_z;
  return lp;
}

double ref_confidence(const std::vector<float>& l, int32_t conf_k) {
  const std::vector<double> lp = ref_logprobs(l);
  const std::vector<int32_t> order = ref_order(l);
  double sum = 0.0;
  int32_t k = 0;
  for (; k < std::min<int32_t>(conf_k, int32_t(l.size())) && std::isfinite(lp[order[k]]); ++k) sum += lp[order[k]];
  return k ? -sum / k : 0.0;
}

// Exact probability of each token under the chain top-k -> top-p -> min-p -> temperature.
std::vector<double> ref_distribution(const std::vector<float>& l, const SamplingParams& p) {
  const std::vector<int32_t> order = ref_order(l);
  const double mx = clean(l[order[0]]);
  size_t s = l.size();
  if (p.top_k > 0) s = std::min(s, size_t(p.top_k));
  if (p.top_p < 1.0f) {
    double z = 0.0;
    for (size_t i = 0; i < s; ++i) z += std::exp(clean(l[order[i]]) - mx);
    double cum = 0.0;
    size_t i = 0;
    while (i < s) {
      cum += std::exp(clean(l[order[i++]]) - mx) / z;
      if (cum >= p.top_p) break;
    }
    s = i;
  }
  if (p.min_p > 0.0f) {
    size_t i = 1;
    while (i < s && std::exp(clean(l[order[i]]) - mx) >= p.min_p) ++i;
    s = i;
  }
  std::vector<double> prob(l.size(), 0.0);
  double total = 0.0;
  for (size_t i = 0; i < s; ++i) total += prob[order[i]] = std::exp((clean(l[order[i]]) - mx) / p.temperature);
  for (double& x : prob) x /= total;
  return prob;
}

// ---- helpers over many draws ----------------------------------------------------------------------

std::vector<int64_t> histogram(Sampler& s, const std::vector<float>& l, SamplingParams p, int n_draws) {
  std::vector<int64_t> count(l.size(), 0);
  for (int i = 0; i < n_draws; ++i) {
    p.counter = uint64_t(i);
    ++count[size_t(s.sample(l.data(), p, nullptr, nullptr).token)];
  }
  return count;
}

std::set<int32_t> support(Sampler& s, const std::vector<float>& l, const SamplingParams& p, int n_draws = 3000) {
  const std::vector<int64_t> count = histogram(s, l, p, n_draws);
  std::set<int32_t> seen;
  for (size_t i = 0; i < count.size(); ++i) {
    if (count[i]) seen.insert(int32_t(i));
  }
  return seen;
}

// Pearson chi-square of observed counts against exact probabilities, pooling cells expected
// below 5. A draw of a zero-probability token fails outright. With these fixed seeds the test
// is deterministic; the bound (df + 6 sd) is far beyond chance and far below any real bias.
void check_distribution(Sampler& s, const std::vector<float>& l, const SamplingParams& p, int n_draws, const std::string& name) {
  const std::vector<double> prob = ref_distribution(l, p);
  const std::vector<int64_t> count = histogram(s, l, p, n_draws);
  double chi2 = 0.0, pooled_e = 0.0, pooled_o = 0.0, max_err = 0.0;
  int df = -1;
  bool impossible = false;
  for (size_t i = 0; i < l.size(); ++i) {
    if (prob[i] == 0.0 && count[i] > 0) impossible = true;
    const double e = prob[i] * n_draws;
    max_err = std::max(max_err, std::fabs(double(count[i]) / n_draws - prob[i]));
    if (e < 5.0) {
      pooled_e += e;
      pooled_o += double(count[i]);
    } else {
      chi2 += (double(count[i]) - e) * (double(count[i]) - e) / e;
      ++df;
    }
  }
  if (pooled_e > 0.0) {
    chi2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
    ++df;
  }
  const double bound = df + 6.0 * std::sqrt(2.0 * std::max(df, 1));
  std::printf("  %s: chi2 %.1f, df %d, bound %.1f, max |freq - p| %.4f\n", name.c_str(), chi2, df, bound, max_err);
  check(!impossible, name + ": no zero-probability token drawn");
  check(chi2 <= bound, name + ": frequencies match exact probabilities");
}

// ---- tests ----------------------------------------------------------------------------------------

void test_uniform() {
  std::set<double> seen;
  double sum = 0.0, lo = 1.0, hi = 0.0;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    for (uint64_t c = 0; c < 1000; ++c) {
      const double u = weft::sampler_uniform(seed, c);
      seen.insert(u);
      sum += u;
      lo = std::min(lo, u);
      hi = std::max(hi, u);
    }
  }
  check(lo >= 0.0 && hi < 1.0, "uniform: in [0, 1)");
  check(seen.size() == 100000, "uniform: 100 seeds x 1000 counters give 100000 distinct values");
  check(std::fabs(sum / 100000 - 0.5) < 0.005, "uniform: mean 0.5");
  check(weft::sampler_uniform(42, 9) == weft::sampler_uniform(42, 9), "uniform: pure function of (seed, counter)");
  check(weft::sampler_uniform(0, 0) != 0.0, "uniform: seed 0, counter 0 is not degenerate");
}

void test_greedy() {
  Sampler s(8);
  const std::vector<float> l = {0.5f, 2.0f, -1.0f, 7.0f, 3.0f, 7.0f, 1.0f, 7.0f};
  check(s.sample(l.data(), temp(0.0f), nullptr, nullptr).token == 3, "greedy: ties go to the lowest id");
  check(s.sample(l.data(), temp(-1.0f), nullptr, nullptr).token == 3, "greedy: negative temperature is greedy");
  const std::vector<float> flat(8, 1.25f);
  check(s.sample(flat.data(), temp(0.0f), nullptr, nullptr).token == 0, "greedy: all equal -> id 0");

  for (int32_t n : {512, 32000, 151936}) {
    Sampler sn(n);
    const std::vector<float> r = random_logits(n, 11u + uint32_t(n), 2.0f);
    const int32_t want = ref_order(r)[0];
    check(sn.sample(r.data(), temp(0.0f), nullptr, nullptr).token == want, "greedy: argmax at vocab " + std::to_string(n));
  }
}

void test_statistics_vs_reference() {
  for (int32_t n : {512, 32000, 151936}) {
    for (float sigma : {1.0f, 4.0f}) {
      const std::string tag = "vocab " + std::to_string(n) + " sigma " + std::to_string(int(sigma));
      const std::vector<float> l = random_logits(n, uint32_t(n) * 3u + uint32_t(sigma), sigma);
      const std::vector<double> lp = ref_logprobs(l);
      const std::vector<int32_t> order = ref_order(l);
      Sampler s(n);
      constexpr int32_t kTop = 50;
      std::vector<int32_t> ids(kTop);
      std::vector<float> lps(kTop);

      SamplingParams p = temp(0.0f);
      p.n_top = kTop;
      SampleResult r = s.sample(l.data(), p, ids.data(), lps.data());
      check(close(r.logprob, lp[size_t(r.token)]), "logprob matches reference (greedy), " + tag);
      check(close(r.confidence, ref_confidence(l, 20)), "confidence matches reference, " + tag);
      bool ids_ok = true, lps_ok = true;
      for (int32_t i = 0; i < kTop; ++i) {
        ids_ok = ids_ok && ids[size_t(i)] == order[size_t(i)];
        lps_ok = lps_ok && close(lps[size_t(i)], lp[size_t(order[size_t(i)])]);
      }
      check(ids_ok && lps_ok, "top 50 ids and logprobs match reference, " + tag);

      p = temp(0.9f, 3);
      p.top_p = 0.95f;
      bool sampled_ok = true;
      for (uint64_t c = 0; c < 20; ++c) {
        p.counter = c;
        r = s.sample(l.data(), p, nullptr, nullptr);
        sampled_ok = sampled_ok && close(r.logprob, lp[size_t(r.token)]);
      }
      check(sampled_ok, "logprob of sampled tokens matches reference, " + tag);
    }
  }

  const std::vector<float> l = random_logits(512, 5, 3.0f);
  Sampler s5(512, 5);
  check(close(s5.sample(l.data(), temp(0.0f), nullptr, nullptr).confidence, ref_confidence(l, 5)), "confidence with conf_k 5");
  Sampler s_all(512, 100000);
  check(close(s_all.sample(l.data(), temp(0.0f), nullptr, nullptr).confidence, ref_confidence(l, 512)),
        "conf_k above the vocabulary is clamped to it");
}

void test_top_n() {
  Sampler s(5);
  const std::vector<float> l = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f};
  SamplingParams p = temp(0.0f);
  p.n_top = 5;
  std::vector<int32_t> ids(5);
  std::vector<float> lps(5);
  const SampleResult r = s.sample(l.data(), p, ids.data(), lps.data());
  check(ids == std::vector<int32_t>({1, 2, 4, 3, 0}), "top_n: most likely first, ties lower id first");
  check(lps[0] == lps[1] && lps[1] == lps[2] && lps[2] > lps[3] && lps[3] > lps[4], "top_n: logprobs non-increasing, equal on ties");
  check(r.token == 1 && r.logprob == lps[0], "top_n: chosen token's logprob equals its top_n entry");

  p.n_top = 0;
  check(s.sample(l.data(), p, nullptr, nullptr).token == 1, "top_n 0 accepts null buffers");

  // n_top = n_vocab takes the full-sort path on a large vocabulary.
  const int32_t n = 20000;
  const std::vector<float> big = random_logits(n, 99, 2.0f);
  Sampler sb(n);
  SamplingParams pb = temp(0.7f, 5);
  pb.n_top = n;
  std::vector<int32_t> all_ids(static_cast<size_t>(n));
  std::vector<float> all_lps(static_cast<size_t>(n));
  sb.sample(big.data(), pb, all_ids.data(), all_lps.data());
  check(all_ids == ref_order(big), "top_n = n_vocab: the full canonical order");
}

void test_determinism() {
  const int32_t n = 32000;
  const std::vector<float> l = random_logits(n, 21, 1.5f);
  Sampler a(n), b(n);
  SamplingParams p = temp(1.0f, 1234);
  p.counter = 17;
  const int32_t t1 = a.sample(l.data(), p, nullptr, nullptr).token;
  SamplingParams other = temp(0.5f, 1);
  other.top_k = 3;
  a.sample(l.data(), other, nullptr, nullptr);  // leaves different scratch behind
  check(a.sample(l.data(), p, nullptr, nullptr).token == t1, "determinism: same (seed, counter) -> same token, reused sampler");
  check(b.sample(l.data(), p, nullptr, nullptr).token == t1, "determinism: same token from a fresh sampler");

  p.n_top = 200;
  std::vector<int32_t> ids(200);
  std::vector<float> lps(200);
  check(a.sample(l.data(), p, ids.data(), lps.data()).token == t1, "determinism: asking for top_n does not move the draw");

  std::set<int32_t> by_counter, by_seed;
  bool repeat_ok = true;
  for (uint64_t c = 0; c < 1000; ++c) {
    SamplingParams q = temp(1.0f, 1234);
    q.counter = c;
    const int32_t t = a.sample(l.data(), q, nullptr, nullptr).token;
    repeat_ok = repeat_ok && b.sample(l.data(), q, nullptr, nullptr).token == t;
    by_counter.insert(t);
    by_seed.insert(a.sample(l.data(), temp(1.0f, 5000 + c), nullptr, nullptr).token);
  }
  check(repeat_ok, "determinism: 1000 draws repeat exactly");
  check(by_counter.size() > 100, "determinism: different counters give different tokens (" + std::to_string(by_counter.size()) + " distinct)");
  check(by_seed.size() > 100, "determinism: different seeds give different tokens (" + std::to_string(by_seed.size()) + " distinct)");
}

void test_distributions() {
  {
    const std::vector<float> l = random_logits(64, 31, 1.5f);
    Sampler s(64);
    check_distribution(s, l, temp(0.8f, 11), 100000, "temperature 0.8, vocab 64");
  }
  {
    const std::vector<float> l = random_logits(1000, 32, 1.0f);
    Sampler s(1000);
    SamplingParams p = temp(1.5f, 12);
    p.top_k = 10;
    check_distribution(s, l, p, 100000, "top-k 10, temperature 1.5");
    p = temp(0.7f, 13);
    p.top_p = 0.9f;
    check_distribution(s, l, p, 100000, "top-p 0.9, temperature 0.7");
  }
  {
    // No favourites, so each filter of the chain cuts somewhere inside the previous one's set.
    std::mt19937 rng(34);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> l(1000);
    for (float& x : l) x = normal(rng);
    Sampler s(1000);
    SamplingParams p = temp(1.2f, 14);
    p.top_k = 40;
    p.top_p = 0.8f;
    p.min_p = 0.4f;
    check_distribution(s, l, p, 100000, "top-k 40, top-p 0.8, min-p 0.4, temperature 1.2");
  }
  {
    // Flat logits: the drawn token usually lies beyond the first sorted prefix, so the sorted
    // prefix has to grow while the draw walks.
    std::mt19937 rng(33);
    std::uniform_real_distribution<float> u(0.0f, 0.5f);
    std::vector<float> l(2000);
    for (float& x : l) x = u(rng);
    Sampler s(2000);
    check_distribution(s, l, temp(1.0f, 15), 40000, "temperature 1, flat vocab 2000");
    SamplingParams p = temp(1.0f, 16);
    p.top_p = 0.97f;
    check_distribution(s, l, p, 40000, "top-p 0.97, flat vocab 2000");
  }
}

void test_filters_support() {
  Sampler s(8);
  const std::vector<float> ramp = {0, 1, 2, 3, 4, 5, 6, 7};
  SamplingParams p = temp(1.0f);
  p.top_k = 3;
  check(support(s, ramp, p) == std::set<int32_t>({5, 6, 7}), "top-k 3 keeps the 3 largest logits");
  p = temp(100.0f);
  p.top_k = 8 + 5;
  check(support(s, ramp, p).size() == 8, "top-k above the vocabulary is off");

  Sampler s4(4);
  const std::vector<float> ties = {5, 5, 5, 1};
  p = temp(1.0f);
  p.top_k = 2;
  check(support(s4, ties, p) == std::set<int32_t>({0, 1}), "top-k at a tie keeps the lower ids");

  // p = {0.15, 0.50, 0.05, 0.30} by id; descending: id1 0.50, id3 0.30, id0 0.15, id2 0.05.
  const std::vector<float> l = {std::log(0.15f), std::log(0.50f), std::log(0.05f), std::log(0.30f)};
  auto params = [](float top_p, float min_p, int32_t top_k) {
    SamplingParams q = temp(1.0f, 77);
    q.top_p = top_p;
    q.min_p = min_p;
    q.top_k = top_k;
    return q;
  };
  check(support(s4, l, params(0.45f, 0, 0)) == std::set<int32_t>({1}), "top-p 0.45: {0.50}");
  check(support(s4, l, params(0.75f, 0, 0)) == std::set<int32_t>({1, 3}), "top-p 0.75: {0.50, 0.30}");
  check(support(s4, l, params(0.85f, 0, 0)) == std::set<int32_t>({0, 1, 3}), "top-p 0.85: {0.50, 0.30, 0.15}");
  check(support(s4, l, params(0.99f, 0, 0)).size() == 4, "top-p 0.99: all four");
  check(support(s4, l, params(0.60f, 0, 0)) == std::set<int32_t>({1, 3}), "top-p 0.6 without top-k: {0.50, 0.30}");
  check(support(s4, l, params(0.60f, 0, 2)) == std::set<int32_t>({1}), "top-p 0.6 after top-k 2 renormalises: {0.625}");
  check(support(s4, l, params(1, 0.25f, 0)) == std::set<int32_t>({0, 1, 3}), "min-p 0.25 drops p < 0.125");
  check(support(s4, l, params(1, 0.5f, 0)) == std::set<int32_t>({1, 3}), "min-p 0.5 drops p < 0.25");
  check(support(s4, l, params(1, 0.7f, 0)) == std::set<int32_t>({1}), "min-p 0.7 keeps the top only");
  check(support(s4, l, params(1, 2.0f, 0)) == std::set<int32_t>({1}), "min-p above 1 keeps the top only");
  check(support(s4, l, params(0.85f, 0.5f, 0)) == std::set<int32_t>({1, 3}), "top-p 0.85 then min-p 0.5");

  SamplingParams cold = temp(1e-6f);
  check(support(s, ramp, cold) == std::set<int32_t>({7}), "temperature 1e-6 always takes the argmax");
  SamplingParams tiny = temp(1e-45f);
  check(support(s, ramp, tiny) == std::set<int32_t>({7}), "denormal temperature is not NaN");
  SamplingParams hot = temp(1e6f, 5);
  hot.top_k = 3;
  const std::vector<int64_t> h = histogram(s, ramp, hot, 30000);
  check(h[5] > 9500 && h[6] > 9500 && h[7] > 9500, "temperature 1e6 after top-k 3 is uniform over the 3");
}

// Survivor sets larger than the sorted head (256): the top-p cut is then found by binning the
// rest of the vocabulary, and the draw walks those survivors by id. A huge temperature makes the
// draw uniform over the survivors, so 100 draws per survivor show the set exactly.
void test_beyond_head() {
  std::mt19937 rng(61);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> l(1000);
  for (float& x : l) x = normal(rng);
  Sampler s(1000);
  auto expect_support = [&](const SamplingParams& p, const std::string& name) {
    const std::vector<double> prob = ref_distribution(l, p);
    std::set<int32_t> want;
    for (size_t i = 0; i < prob.size(); ++i) {
      if (prob[i] > 0.0) want.insert(int32_t(i));
    }
    const std::set<int32_t> seen = support(s, l, p, int(want.size()) * 100);
    check(want.size() > 256 && seen == want, name + " (" + std::to_string(want.size()) + " survivors)");
  };
  SamplingParams p = temp(1e6f, 3);
  p.top_k = 400;
  expect_support(p, "top-k 400 keeps exactly the top 400");
  p = temp(1e6f, 4);
  p.top_p = 0.7f;
  expect_support(p, "top-p 0.7 past the head keeps exactly the nucleus");
  p = temp(1e6f, 5);
  p.min_p = 0.06f;
  expect_support(p, "min-p 0.06 past the head keeps exactly p >= 0.06 p_max");
  p = temp(1e6f, 6);
  p.top_k = 600;
  p.top_p = 0.75f;
  expect_support(p, "top-k 600 then top-p 0.75 past the head");
}

void test_masked() {
  const int32_t n = 1000;
  std::vector<float> l = random_logits(n, 41, 2.0f);
  std::set<int32_t> allowed;
  for (int32_t i = 0; i < n; ++i) {
    if (i % 100 == 7) {
      allowed.insert(i);
    } else {
      l[size_t(i)] = -kInf;
    }
  }
  Sampler s(n);
  std::set<int32_t> seen = support(s, l, temp(3.0f), 5000);
  check(std::includes(allowed.begin(), allowed.end(), seen.begin(), seen.end()), "masked: -inf tokens never sampled (temperature)");
  SamplingParams p = temp(1.0f);
  p.top_k = 50;
  seen = support(s, l, p, 5000);
  check(std::includes(allowed.begin(), allowed.end(), seen.begin(), seen.end()), "masked: never sampled with top-k wider than the unmasked set");
  p = temp(2.0f);
  p.top_p = 0.9999f;
  p.min_p = 1e-30f;
  seen = support(s, l, p, 5000);
  check(seen == allowed, "masked: top-p and min-p reaching into the masked tokens sample all the unmasked ones only");
  p = temp(1.0f);
  p.n_top = 15;
  std::vector<int32_t> ids(15);
  std::vector<float> lps(15);
  const SampleResult r = s.sample(l.data(), p, ids.data(), lps.data());
  check(lps[9] > -kInf && lps[10] == -kInf && ids[10] == 0 && ids[11] == 1, "masked: top_n lists masked tokens last at -inf, by id");
  check(close(r.confidence, ref_confidence(l, 20)), "masked: confidence over the 10 unmasked tokens only");

  const std::vector<float> none(16, -kInf);
  Sampler s16(16);
  for (float t : {0.0f, 1.0f}) {
    SamplingParams q = temp(t);
    q.n_top = 2;
    q.top_p = 0.5f;
    std::vector<int32_t> i2(2);
    std::vector<float> l2(2);
    const SampleResult rr = s16.sample(none.data(), q, i2.data(), l2.data());
    check(rr.token == 0 && rr.logprob == -kInf && rr.confidence == 0.0f && i2[1] == 1 && l2[0] == -kInf,
          std::string("all masked: token 0, logprob -inf, confidence 0 (") + (t > 0 ? "sampled)" : "greedy)"));
  }
}

void test_non_finite() {
  const int32_t n = 300;
  std::vector<float> l = random_logits(n, 51, 2.0f);
  const int32_t top = ref_order(l)[0];
  l[size_t(top)] = kNaN;
  l[3] = kInf;
  l[4] = kNaN;
  Sampler s(n);
  const SampleResult g = s.sample(l.data(), temp(0.0f), nullptr, nullptr);
  check(g.token == ref_order(l)[0] && g.token != top && g.token != 3, "NaN and +inf are masked: greedy takes the best finite logit");
  check(close(g.logprob, ref_logprobs(l)[size_t(g.token)]) && std::isfinite(g.confidence), "NaN and +inf: statistics over the finite logits");
  const std::set<int32_t> seen = support(s, l, temp(5.0f), 5000);
  check(!seen.count(top) && !seen.count(3) && !seen.count(4), "NaN and +inf never sampled");

  const std::vector<float> nan_row(32, kNaN);
  Sampler s32(32);
  const SampleResult r = s32.sample(nan_row.data(), temp(0.8f), nullptr, nullptr);
  check(r.token == 0 && r.logprob == -kInf, "all NaN: treated as all masked");
}

void test_invalid() {
  check_invalid([] { Sampler s(0); }, "n_vocab 0");
  check_invalid([] { Sampler s(10, 0); }, "conf_k 0");
  Sampler s(10);
  const std::vector<float> l(10, 0.0f);
  std::vector<int32_t> ids(11);
  std::vector<float> lps(11);
  auto run = [&](SamplingParams p) { s.sample(l.data(), p, ids.data(), lps.data()); };
  SamplingParams p;
  check_invalid([&] { s.sample(nullptr, SamplingParams(), nullptr, nullptr); }, "null logits");
  p = temp(1.0f);
  p.n_top = -1;
  check_invalid([&] { run(p); }, "n_top < 0");
  p.n_top = 11;
  check_invalid([&] { run(p); }, "n_top > n_vocab");
  p.n_top = 3;
  check_invalid([&] { s.sample(l.data(), p, nullptr, nullptr); }, "n_top > 0 without buffers");
  p = temp(kNaN);
  check_invalid([&] { run(p); }, "temperature NaN");
  p = temp(kInf);
  check_invalid([&] { run(p); }, "temperature +inf");
  for (float top_p : {0.0f, -0.5f, kNaN}) {
    p = temp(1.0f);
    p.top_p = top_p;
    check_invalid([&] { run(p); }, "top_p " + std::to_string(top_p));
  }
  p = temp(1.0f);
  p.min_p = kNaN;
  check_invalid([&] { run(p); }, "min_p NaN");

  p = temp(1.0f);
  p.top_p = 1.0f;
  p.min_p = -1.0f;
  p.top_k = -4;
  bool ok = true;
  try {
    run(p);
  } catch (const weft::Error&) {
    ok = false;
  }
  check(ok, "top_p 1, negative min_p and negative top_k are simply off");
}

// The tokens drawn are fixed by the logits and (seed, counter), on every build: the sampler's
// vocabulary passes run as an AVX2 clone where the CPU has it and as plain x86-64 code where not
// (without FMA, so the arithmetic is the same), and this pins the stream either way. The logits
// come from integer arithmetic alone (no libm, no std::normal_distribution, whose algorithm
// differs between standard libraries) and min_p stays 0 (its cut takes a libm log).
void test_golden_stream() {
  uint64_t state = 0x9e3779b97f4a7c15ULL, hash = 1469598103934665603ULL;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return float(state >> 40) * (12.0f / 16777216.0f) - 6.0f;  // [-6, 6) in steps of 2^-21
  };
  for (int32_t n : {1000, 49152}) {
    std::vector<float> l(static_cast<size_t>(n));
    for (float& x : l) x = next();
    Sampler s(n);
    for (float t : {0.3f, 0.7f, 1.0f, 1.5f}) {
      for (float top_p : {1.0f, 0.9f}) {
        for (int32_t top_k : {0, 40}) {
          SamplingParams p = temp(t, 99);
          p.top_p = top_p;
          p.top_k = top_k;
          for (uint64_t c = 0; c < 10; ++c) {
            p.counter = c;
            hash = (hash ^ uint64_t(uint32_t(s.sample(l.data(), p, nullptr, nullptr).token))) * 1099511628211ULL;
          }
        }
      }
    }
  }
  // The value the sampler gave before its passes were cloned for AVX2, and gives on both paths.
  check(hash == 0xdbaf19f2aa470adfULL, "golden stream: the tokens of 320 seeded draws are unchanged (hash " + std::to_string(hash) + ")");
}

}  // namespace

int main() {
  test_uniform();
  test_greedy();
  test_statistics_vs_reference();
  test_top_n();
  test_determinism();
  test_distributions();
  test_filters_support();
  test_beyond_head();
  test_masked();
  test_non_finite();
  test_invalid();
  test_golden_stream();
  std::printf("%d checks, %d failed\n", g_checks, g_failed);
  return g_failed == 0 ? 0 : 1;
}
