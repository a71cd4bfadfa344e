// ThreadPool: n-1 workers plus the caller of run(), one region at a time.
//
// Region start: run() bumps `region` (under `mu`, so a worker about to sleep cannot miss it) and
// notifies; workers poll `region` kPollsBeforeSleep times, then sleep on `cv` (after a region
// run() was told another follows soon, they first poll for up to kLingerMicros).
// Barrier: an arrival counter and a generation number. The last thread to arrive resets the
// counter and bumps the generation; the others spin on the generation, yielding to the OS
// after a while in case there are more threads than free cores.
//
// Exceptions: the first exception thrown by fn on any thread is kept and rethrown by run() on
// the caller once every thread has left the region. So that threads waiting in (or later
// reaching) barrier() do not wait forever for the thread that threw, barrier() then throws a
// private unwind marker on them: their fn unwinds too and run() drops the marker. The rule for
// fn is therefore: be exception-safe (RAII), and do not swallow exceptions with catch (...).
#include "thread-pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../core/error.h"

#if defined(__linux__)
#include <sched.h>
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace weft::cpu {

namespace {

// Between regions a worker polls only this many times (a few microseconds) before sleeping. A
// longer spin looked cheaper than a futex wake-up, but between two steps of a generation the
// JavaScript thread and the libuv thread that starts the next step need the cores: measured on
// 2 cores (interleaved A/B, smollm2 decode at batch 1), a 200 us spin left ~8% of steps with
// both compute threads time-sharing one core for most of the step (every barrier then waits on
// the scheduler), 10-25 ms each, against 1-5% without it; mean step time 4-16% lower.
constexpr int kPollsBeforeSleep = 64;
// Waits pause-spin this many times (~50 us at ~25 ns a pause) before yielding the core on
// every try: a barrier partner is usually microseconds away, but when there are more runnable
// threads than cores the one being waited for needs the core.
constexpr int kPausesBeforeYield = 2048;
// How long workers poll for a region said to follow soon: between the steps of one run-ahead
// call the caller samples one token (37 us for a 49k vocabulary, 250 us for 152k at temperature
// 0.7 on the dev VM), and a futex wake-up after it cost ~40 us a step (measured as the first
// phase of the next step: attn_norm 53 us a step against ffn_norm's 13 for the same work).
constexpr auto kLingerMicros = std::chrono::microseconds(500);

// One unsuccessful try of a wait: pause early on, yield later.
void backoff(int tries) {
  if (tries >= kPausesBeforeYield) {
    std::this_thread::yield();
    return;
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

template <class Pred>
void spin_until(Pred done) {
  for (int tries = 0; !done(); tries += tries < kPausesBeforeYield) backoff(tries);
}

// Thrown by barrier() once another thread's fn has thrown; not a std::exception, so fn's
// ordinary handlers let it through.
struct RegionAborted {};

}  // namespace

struct ThreadPool::Impl {
  int n = 1;
  std::vector<std::thread> workers;
  const std::function<void(int, int)>* fn = nullptr;  // valid during a region

  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;                  // guarded by mu
  std::atomic<bool> in_run{false};
  std::atomic<bool> linger{false};    // set by run(), read by workers as they leave its region

  // Each on its own cache line: threads arriving at a barrier write `arrived` while the early
  // ones poll `generation`, and workers finishing a region write `pending` while idle ones
  // poll `region`.
  alignas(64) std::atomic<uint64_t> region{0};    // bumped once per run()
  alignas(64) std::atomic<int> pending{0};        // workers still inside the current region
  alignas(64) std::atomic<int> arrived{0};        // threads at the current barrier
  alignas(64) std::atomic<uint32_t> generation{0};
  alignas(64) std::atomic<bool> failed{false};    // some thread's fn threw in this region

  std::mutex error_mu;
  std::exception_ptr error;           // the first exception of this region

  void execute(int tid) {
    try {
      (*fn)(tid, n);
    } catch (const RegionAborted&) {
      // Another thread failed first; its exception is the one run() reports.
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
      }
      failed.store(true, std::memory_order_release);
    }
  }

  // Returns false when the pool is shutting down.
  bool wait_for_region(uint64_t seen, bool lingering) {
    if (lingering) {
      const auto until = std::chrono::steady_clock::now() + kLingerMicros;
      for (int i = 0;; ++i) {
        if (region.load(std::memory_order_acquire) != seen) return true;
        backoff(i);
        if (i % 64 == 63 && std::chrono::steady_clock::now() > until) break;
      }
    }
    for (int i = 0; i < kPollsBeforeSleep; ++i) {
      if (region.load(std::memory_order_acquire) != seen) return true;
      backoff(i);
    }
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return stop || region.load(std::memory_order_acquire) != seen; });
    return !stop;
  }

  void worker(int tid) {
    uint64_t seen = 0;
    bool lingering = false;
    while (wait_for_region(seen, lingering)) {
      ++seen;  // run() waits for every worker, so no region is ever skipped
      execute(tid);
      lingering = linger.load(std::memory_order_relaxed);  // before run() may return and reset it
      pending.fetch_sub(1, std::memory_order_release);
    }
  }

  void shut_down() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    for (std::thread& t : workers) t.join();
  }
};

ThreadPool::ThreadPool(int n_threads) : impl_(nullptr) {
  if (n_threads < 1) {
    fail(ErrorCode::InvalidArgument,
         "ThreadPool: n_threads must be at least 1, got " + std::to_string(n_threads));
  }
  Impl* s = new Impl;
  s->n = n_threads;
  try {
    for (int tid = 1; tid < n_threads; ++tid) s->workers.emplace_back([s, tid] { s->worker(tid); });
  } catch (...) {
    s->shut_down();
    delete s;
    throw;
  }
  impl_ = s;
}

ThreadPool::~ThreadPool() {
  impl_->shut_down();
  delete impl_;
}

int ThreadPool::size() const { return impl_->n; }

void ThreadPool::run(const std::function<void(int tid, int nth)>& fn, bool next_soon) {
  Impl& s = *impl_;
  if (s.in_run.exchange(true, std::memory_order_acquire)) {
    fail(ErrorCode::Internal, "ThreadPool::run called while a region is running");
  }
  s.fn = &fn;
  s.error = nullptr;
  s.failed.store(false, std::memory_order_relaxed);
  s.arrived.store(0, std::memory_order_relaxed);  // an aborted region may have left arrivals
  s.pending.store(s.n - 1, std::memory_order_relaxed);
  s.linger.store(next_soon, std::memory_order_relaxed);  // published by the release of `region`
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.region.fetch_add(1, std::memory_order_release);
  }
  s.cv.notify_all();

  s.execute(0);
  spin_until([&] { return s.pending.load(std::memory_order_acquire) == 0; });

  std::exception_ptr error = s.error;
  s.error = nullptr;
  s.fn = nullptr;
  s.in_run.store(false, std::memory_order_release);
  if (error) std::rethrow_exception(error);
}

void ThreadPool::barrier(ReadAhead* ahead) {
  Impl& s = *impl_;
  if (s.n == 1) return;
  if (s.failed.load(std::memory_order_acquire)) throw RegionAborted{};
  // Read the generation before arriving: it cannot move until this thread has arrived.
  const uint32_t gen = s.generation.load(std::memory_order_acquire);
  if (s.arrived.fetch_add(1, std::memory_order_acq_rel) == s.n - 1) {
    s.arrived.store(0, std::memory_order_relaxed);
    s.generation.store(gen + 1, std::memory_order_release);
    return;
  }
  auto released = [&] {
    if (s.failed.load(std::memory_order_acquire)) throw RegionAborted{};
    return s.generation.load(std::memory_order_acquire) != gen;
  };
  if (ahead) {
    // Loads, not prefetches, so every line comes (a burst of prefetch instructions mostly does
    // not), a few lines between looks at the generation so that the release is seen promptly.
    constexpr ptrdiff_t kStride = 64 * 8;
    while (ahead->end - ahead->next >= kStride && !released()) {
      for (ptrdiff_t i = 0; i < kStride; i += 64) (void)*reinterpret_cast<const volatile char*>(ahead->next + i);
      ahead->next += kStride;
    }
  }
  spin_until(released);
}

int physical_cores() {
#if defined(__linux__)
  // Distinct cores among the CPUs this process may run on: SMT siblings share one sibling list.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    std::set<std::string> cores;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &set)) continue;
      const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      std::string siblings;
      for (const char* file : {"core_cpus_list", "thread_siblings_list"}) {
        std::ifstream in(dir + file);
        if (in && std::getline(in, siblings) && !siblings.empty()) break;
        siblings.clear();
      }
      cores.insert(siblings.empty() ? "cpu" + std::to_string(cpu) : siblings);
    }
    if (!cores.empty()) return static_cast<int>(cores.size());
  }
#elif defined(__APPLE__)
  int n = 0;
  size_t len = sizeof n;
  if (sysctlbyname("hw.physicalcpu", &n, &len, nullptr, 0) == 0 && n > 0) return n;
#endif
  const unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

}  // namespace weft::cpu
