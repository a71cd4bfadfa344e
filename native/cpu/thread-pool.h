// A fixed pool of worker threads that run one parallel region at a time.
//
// run(fn) calls fn(tid, nth) on every thread, the calling thread being tid 0, and returns when
// all have finished. Inside fn, barrier() waits for every thread of the region, spinning on an
// atomic (a forward pass has hundreds of barriers per token; a condition-variable wake-up per
// barrier would cost more than the arithmetic). Between regions workers sleep almost at once,
// leaving the cores to the threads that prepare the next region.
#pragma once

#include <functional>

namespace weft::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;
  // Not reentrant: one region at a time per pool. next_soon: the caller starts another region
  // right after this one (a decode step after sampling the last one's token), so workers poll
  // for it a while instead of sleeping.
  void run(const std::function<void(int tid, int nth)>& fn, bool next_soon = false);
  // Memory this thread reads next, [next, end): while it waits at a barrier it loads those lines
  // (advancing next), so the wait for a slower thread becomes the start of its next phase.
  struct ReadAhead {
    const char* next = nullptr;
    const char* end = nullptr;
  };
  // Only from inside run(); every thread of the region must call it the same number of times.
  void barrier(ReadAhead* ahead = nullptr);

 private:
  struct Impl;
  Impl* impl_;
};

// Physical cores of this machine (logical CPUs / SMT siblings), at least 1.
int physical_cores();

}  // namespace weft::cpu
