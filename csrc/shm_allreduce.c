/* shm_allreduce.c - the shared-memory half of minidl.distributed's reproducible allreduce.
 *
 * The ranks of one machine share an MPI-3 window (made by minidl/distributed/comm.py). Each
 * rank's segment holds, in this order: its arrival counter (a cache line of its own), its
 * slot (the values it contributes) and its result chunk. One call, on every rank at once:
 *
 *   1. copy the input into the rank's own slot (nothing to do when the input is the slot);
 *   2. arrive: counter = epoch + 1, then wait until every rank's counter reaches it;
 *   3. sum this rank's chunk of every slot in rank order, ((s0 + s1) + s2) + ..., into its
 *      result chunk, and divide by the number of ranks for a mean;
 *   4. arrive again (epoch + 2), so that every result chunk is complete;
 *   5. copy every rank's result chunk into the output.
 *
 * Each element is summed in the same order on every rank and every run, with the same
 * operations as numpy's element-wise add and divide (the message path's), so both transports
 * give the same bits. The counters only grow (the caller advances the epoch by 2 per call),
 * so they need no reset; the two arrivals also order consecutive calls: a slot is written
 * again only after every rank has passed the arrival that ends its reading (4), a result
 * chunk only after every rank has passed the arrival that starts the next sum (2).
 *
 * A rank that waits longer than the timeout returns instead of spinning for ever (the caller
 * aborts the job). Waiting spins with a pause for about a microsecond, then yields the core,
 * so that oversubscribed ranks (more ranks than cores) still make progress.
 */
#include <stdint.h>
#include <string.h>

#include "minidl.h"

#if defined(_WIN32)
#include <windows.h>
static double monotonic_seconds(void) {
    LARGE_INTEGER count, frequency;
    QueryPerformanceCounter(&count);
    QueryPerformanceFrequency(&frequency);
    return (double)count.QuadPart / (double)frequency.QuadPart;
}
static void yield_core(void) { SwitchToThread(); }
static uint64_t load_acquire(const uint64_t *p) {
    uint64_t value = *(const volatile uint64_t *)p;
    MemoryBarrier();
    return value;
}
static void store_release(uint64_t *p, uint64_t value) {
    MemoryBarrier();
    *(volatile uint64_t *)p = value;
}
#else
#include <sched.h>
#include <time.h>
static double monotonic_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
}
static void yield_core(void) { sched_yield(); }
static uint64_t load_acquire(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void store_release(uint64_t *p, uint64_t value) {
    __atomic_store_n(p, value, __ATOMIC_RELEASE);
}
#endif

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spins (then yields) until every rank's counter is at least `target`; -1 past `deadline`. */
static int arrive_and_wait(const mdl_shm_group *g, uint64_t target, double deadline) {
    store_release((uint64_t *)g->segments[g->rank], target);
    for (int r = 0; r < g->ranks; ++r) {
        const uint64_t *counter = (const uint64_t *)g->segments[r];
        unsigned long spins = 0;
        while (load_acquire(counter) < target) {
            if (++spins < 64) {
                cpu_relax();
                continue;
            }
            yield_core();
            if ((spins & 255) == 0 && monotonic_seconds() > deadline)
                return -1;
        }
    }
    return 0;
}

/* Elements summed per block: the partial sums stay in L1 while every slot's block is added. */
#define SHM_BLOCK 2048

#define DEFINE_SHM_ALLREDUCE(NAME, T)                                                        \
    int NAME(const mdl_shm_group *g, const T *in, T *out, ptrdiff_t n, int average,          \
             uint64_t epoch, double timeout_seconds) {                                       \
        const double deadline = monotonic_seconds() + timeout_seconds;                       \
        const ptrdiff_t chunk = (n + g->ranks - 1) / g->ranks;                               \
        T *own_slot = (T *)(g->segments[g->rank] + g->slot_offset);                          \
        if (in != own_slot) /* memmove: `in` may be another part of the slot */             \
            memmove(own_slot, in, (size_t)n * sizeof(T));                                    \
        if (arrive_and_wait(g, epoch + 1, deadline))                                         \
            return 1;                                                                        \
        {                                                                                    \
            const ptrdiff_t lo = g->rank * chunk < n ? g->rank * chunk : n;                  \
            const ptrdiff_t hi = lo + chunk < n ? lo + chunk : n;                            \
            T *acc = (T *)(g->segments[g->rank] + g->result_offset);                         \
            const T divisor = (T)g->ranks;                                                   \
            for (ptrdiff_t start = lo; start < hi; start += SHM_BLOCK) {                     \
                const ptrdiff_t stop = start + SHM_BLOCK < hi ? start + SHM_BLOCK : hi;      \
                const T *s0 = (const T *)(g->segments[0] + g->slot_offset);                  \
                const T *s1 = (const T *)(g->segments[1] + g->slot_offset);                  \
                for (ptrdiff_t i = start; i < stop; ++i)                                     \
                    acc[i - lo] = s0[i] + s1[i];                                             \
                for (int r = 2; r < g->ranks; ++r) {                                         \
                    const T *s = (const T *)(g->segments[r] + g->slot_offset);               \
                    for (ptrdiff_t i = start; i < stop; ++i)                                 \
                        acc[i - lo] = acc[i - lo] + s[i];                                    \
                }                                                                            \
                if (average)                                                                 \
                    for (ptrdiff_t i = start; i < stop; ++i)                                 \
                        acc[i - lo] = acc[i - lo] / divisor;                                 \
            }                                                                                \
        }                                                                                    \
        if (arrive_and_wait(g, epoch + 2, deadline))                                         \
            return 2;                                                                        \
        for (int r = 0; r < g->ranks; ++r) {                                                 \
            const ptrdiff_t lo = r * chunk < n ? r * chunk : n;                              \
            const ptrdiff_t hi = lo + chunk < n ? lo + chunk : n;                            \
            if (hi > lo)                                                                     \
                memcpy(out + lo, g->segments[r] + g->result_offset,                          \
                       (size_t)(hi - lo) * sizeof(T));                                       \
        }                                                                                    \
        return 0;                                                                            \
    }

DEFINE_SHM_ALLREDUCE(mdl_shm_allreduce_f32, float)
DEFINE_SHM_ALLREDUCE(mdl_shm_allreduce_f64, double)
