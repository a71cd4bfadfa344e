// Token sampling and per-token statistics for one output row of logits.
//
// Stateless randomness: the uniform draw for a token is a pure function of (seed, counter),
// where counter is the index of the draw in its sequence's stream (the TS side passes how many
// tokens that sequence has sampled so far). So a seeded trajectory gives the same tokens
// whatever else shares its batch, after preemption and recompute, and on any thread.
//
// Statistics are taken from the model's own distribution, p = softmax(logits) at temperature 1,
// before any filtering: logprob = log p(token); DeepConf confidence C = -(1/k) * sum of log p
// over the k most likely tokens (k = conf_k, default 20). Filters follow llama.cpp's default
// chain so results compare with it: top-k, then top-p, then min-p (each on the temperature-1
// distribution of the survivors), then temperature, then the draw. temperature <= 0 is greedy
// (ties go to the lowest id, as in llama.cpp).
//
// The draw inverts the survivors' cumulative distribution along a fixed order: the 256 most
// likely tokens most likely first (ties: lower id first), then any further survivors by id. So
// a (seed, counter) picks the same token whatever n_top or conf_k, and no call sorts the whole
// vocabulary. top_k <= 0 or >= n_vocab, top_p >= 1 and min_p <= 0 are off; min_p > 1 keeps only
// the top token.
//
// Non-finite logits: -inf masks a token; NaN and +inf are masked too. A masked token is never
// drawn and its log-prob is -inf; confidence averages over the top conf_k tokens that are not
// masked, so it stays finite. With every token masked the result is token 0, log-prob -inf,
// confidence 0. Impossible parameters (n_top outside [0, n_vocab] or without buffers, temperature
// NaN or +inf, top_p <= 0 or NaN, min_p NaN) throw Error(InvalidArgument).
#pragma once

#include <cstdint>
#include <vector>

namespace weft {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy
  int32_t top_k = 0;         // <= 0: off
  float top_p = 1.0f;        // >= 1: off
  float min_p = 0.0f;        // <= 0: off
  uint64_t seed = 0;
  uint64_t counter = 0;      // index of this draw in the sequence's stream
  int32_t n_top = 0;         // top log-probs to report (0..n_vocab)
};

struct SampleResult {
  int32_t token;
  float logprob;     // log p(token) under softmax(logits)
  float confidence;  // DeepConf token confidence (>= 0; higher = more peaked)
};

// Uniform double in [0, 1) from (seed, counter).
double sampler_uniform(uint64_t seed, uint64_t counter);

// One Sampler per thread: it owns scratch buffers sized to the vocabulary.
class Sampler {
 public:
  explicit Sampler(int32_t n_vocab, int32_t conf_k = 20);

  // logits: [n_vocab]. top_ids/top_logprobs: [p.n_top] (may be null when n_top == 0), the
  // n_top most likely tokens under softmax(logits), most likely first (ties: lower id first).
  SampleResult sample(const float* logits, const SamplingParams& p, int32_t* top_ids,
                      float* top_logprobs);

 private:
  // A token in the canonical order: higher logit first, ties lower id first. NaN and +inf logits
  // are stored as -inf (masked), so the order is a strict total order whatever the input.
  struct Candidate {
    float logit;
    int32_t id;
  };

  void select_top(const float* logits, int32_t m);
  Candidate mass_cut(const float* logits, int32_t sorted, double mass, float lmax);
  int32_t draw(const float* logits, const SamplingParams& p, double sum_exp1, int32_t sorted);

  int32_t n_vocab_;
  int32_t conf_k_;                 // clamped to n_vocab
  std::vector<Candidate> cand_;    // [n_vocab] scratch; starts with the head of the canonical order, sorted
  std::vector<double> bin_mass_;   // [kBins + 1] scratch for mass_cut
};

}  // namespace weft
