/* cpu.c - detect what the CPU and the OS support, assemble the kernel table of each
 * architecture and hold the active one (kernels.h: every per-ISA kernel is reached through
 * it), and hold the one thread count that every parallel region of minidl uses, within its
 * bound.
 *
 * A CPU may advertise AVX-512 while the OS does not save the zmm registers on a context
 * switch; using them then corrupts state silently. So besides the cpuid feature bits we read
 * XCR0 (xgetbv) and require the OS to have enabled the matching register state.
 */
#include "kernels.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#if MDL_HAVE_OPENMP
#include <omp.h>
#endif

#ifdef MDL_X86
#include <cpuid.h>

static unsigned long long read_xcr0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static int detect_archs(void) {
    unsigned int eax, ebx, ecx, edx;
    int archs = 1 << MDL_ARCH_GENERIC;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return archs;
    int has_fma = (ecx >> 12) & 1, has_osxsave = (ecx >> 27) & 1, has_avx = (ecx >> 28) & 1;
    if (!has_osxsave || !has_avx) return archs;
    unsigned long long xcr0 = read_xcr0();
    int os_ymm = (xcr0 & 0x6) == 0x6;    /* SSE + AVX state */
    int os_zmm = (xcr0 & 0xE6) == 0xE6;  /* + opmask, upper zmm0-15, zmm16-31 */
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return archs;
    int has_avx2 = (ebx >> 5) & 1, has_avx512f = (ebx >> 16) & 1;
    if (os_ymm && has_avx && has_avx2 && has_fma) archs |= 1 << MDL_ARCH_AVX2;
    if (os_zmm && has_avx512f && (archs & (1 << MDL_ARCH_AVX2))) archs |= 1 << MDL_ARCH_AVX512;
    return archs;
}
#else
static int detect_archs(void) { return 1 << MDL_ARCH_GENERIC; }
#endif

/* One table per architecture: that architecture's version of every family. */
#define KERNEL_TABLE(ARCH, SFX)                                                             \
    {ARCH, &mdl_gemm##SFX, &mdl_conv_pool##SFX, &mdl_optimizers##SFX, &mdl_pooling##SFX,    \
     &mdl_patches##SFX, &mdl_recurrent##SFX, &mdl_batchnorm##SFX}
static const mdl_kernels kernels_generic = KERNEL_TABLE(MDL_ARCH_GENERIC, _generic);
#ifdef MDL_X86
static const mdl_kernels kernels_avx2 = KERNEL_TABLE(MDL_ARCH_AVX2, _avx2);
static const mdl_kernels kernels_avx512 = KERNEL_TABLE(MDL_ARCH_AVX512, _avx512);
#endif

static int g_archs = -1;
/* The active table (kernels.h). The Python layer sets it at import (MINIDL_ARCH, else the
 * best supported). */
const mdl_kernels *mdl_active_table = &kernels_generic;
static int g_num_threads = 0; /* 0: not yet read from the OpenMP runtime */

int mdl_supported_archs(void) {
    if (g_archs < 0) g_archs = detect_archs();
    return g_archs;
}

mdl_arch mdl_best_arch(void) {
    int archs = mdl_supported_archs();
    for (int a = MDL_ARCH_COUNT - 1; a > 0; a--)
        if (archs & (1 << a)) return (mdl_arch)a;
    return MDL_ARCH_GENERIC;
}

int mdl_set_arch(mdl_arch arch) {
    if (arch < 0 || arch >= MDL_ARCH_COUNT || !(mdl_supported_archs() & (1 << arch))) return -1;
    switch (arch) {
#ifdef MDL_X86
    case MDL_ARCH_AVX512: mdl_active_table = &kernels_avx512; break;
    case MDL_ARCH_AVX2: mdl_active_table = &kernels_avx2; break;
#endif
    default: mdl_active_table = &kernels_generic; break;
    }
    return 0;
}

mdl_arch mdl_get_arch(void) { return mdl_active_table->arch; }

const char *mdl_family_name(mdl_family family) {
    static const char *names[MDL_FAMILY_COUNT] = {"gemm", "conv_pool", "optimizers", "pooling",
                                                  "patches", "recurrent", "batchnorm"};
    return (family >= 0 && family < MDL_FAMILY_COUNT) ? names[family] : "unknown";
}

/* Read from the sub-tables' own tags, not from the table's: a table that held another
 * architecture's version of a family would show here. */
mdl_arch mdl_kernel_version(mdl_family family) {
    switch (family) {
    case MDL_FAMILY_GEMM: return mdl_active_table->gemm->arch;
    case MDL_FAMILY_CONV_POOL: return mdl_active_table->conv_pool->arch;
    case MDL_FAMILY_OPTIMIZERS: return mdl_active_table->optimizers->arch;
    case MDL_FAMILY_POOLING: return mdl_active_table->pooling->arch;
    case MDL_FAMILY_PATCHES: return mdl_active_table->patches->arch;
    case MDL_FAMILY_RECURRENT: return mdl_active_table->recurrent->arch;
    case MDL_FAMILY_BATCHNORM: return mdl_active_table->batchnorm->arch;
    default: return MDL_ARCH_COUNT;
    }
}

const char *mdl_arch_name(mdl_arch arch) {
    static const char *names[MDL_ARCH_COUNT] = {"generic", "avx2", "avx512"};
    return (arch >= 0 && arch < MDL_ARCH_COUNT) ? names[arch] : "unknown";
}

const char *mdl_kernel_description(void) {
    static char text[128];
    const mdl_gemm_kernels *k = mdl_active_table->gemm;
    snprintf(text, sizeof text, "%s: sgemm %dx%d (mc %d, kc %d, nc %d), dgemm %dx%d (mc %d, kc %d, nc %d)",
             mdl_arch_name(k->arch), k->s.mr, k->s.nr, k->s.mc, k->s.kc, k->s.nc,
             k->d.mr, k->d.nr, k->d.mc, k->d.kc, k->d.nc);
    return text;
}

int mdl_have_openmp(void) { return MDL_HAVE_OPENMP; }

int mdl_num_procs(void) {
#if MDL_HAVE_OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

int mdl_max_threads(void) { return MDL_THREADS_PER_PROC * mdl_num_procs(); }

int mdl_default_num_threads(void) {
#if MDL_HAVE_OPENMP
    return omp_get_max_threads(); /* OMP_NUM_THREADS, else the processor count */
#else
    return 1;
#endif
}

static int clamp_threads(int n) {
    int bound = mdl_max_threads();
    return n < 1 ? 1 : n > bound ? bound : n;
}

int mdl_get_num_threads(void) {
#if MDL_HAVE_OPENMP
    /* Read once, then ours to change; the Python layer sets it at import (with a warning
     * when the environment asks for more than the bound). */
    if (g_num_threads <= 0) g_num_threads = clamp_threads(mdl_default_num_threads());
    return g_num_threads;
#else
    return 1;
#endif
}

/* Threads for a call of `work` multiply-adds (or comparable operations) split into `items`
 * independent pieces: at most the set count, at most one per item, and at least
 * MDL_WORK_PER_THREAD of work each, so that a small product on a 16-core machine opens a
 * region of two or four threads (or none) rather than sixteen that mostly wait. Which
 * thread computes an item never changes its bits, so this depends on the sizes freely. */
int mdl_threads_for(double work, double items) {
    double nt = (double)mdl_get_num_threads();
    double by_work = work / MDL_WORK_PER_THREAD;
    if (by_work < nt) nt = by_work;
    if (items < nt) nt = items;
    return nt < 1 ? 1 : (int)nt;
}

void mdl_set_num_threads(int n) { g_num_threads = clamp_threads(n); }

/* libgomp gives its worker threads the stack size of OMP_STACKSIZE, else GOMP_STACKSIZE (a
 * number, in KiB unless a B, K, M or G suffix follows), else the pthread default (0 here).
 * Parsed as libgomp parses it (env.c, parse_stacksize), so that the probe below asks for
 * what a team would: an invalid value is one libgomp ignores too. */
static size_t omp_stack_size_from(const char *name) {
    const char *env = getenv(name);
    if (!env) return 0;
    while (isspace((unsigned char)*env)) env++;
    if (!*env) return 0;
    char *end;
    errno = 0;
    unsigned long value = strtoul(env, &end, 10), shift = 10;
    if (errno || end == env) return 0;
    while (isspace((unsigned char)*end)) end++;
    if (*end) {
        switch (tolower((unsigned char)*end)) {
        case 'b': shift = 0; break;
        case 'k': break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        default: return 0;
        }
        end++;
        while (isspace((unsigned char)*end)) end++;
        if (*end) return 0;
    }
    if (((value << shift) >> shift) != value) return 0;
    return (size_t)(value << shift);
}

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t open;
    int released;
} probe_gate;

static void *probe_wait(void *arg) {
    probe_gate *gate = (probe_gate *)arg;
    pthread_mutex_lock(&gate->lock);
    while (!gate->released) pthread_cond_wait(&gate->open, &gate->lock);
    pthread_mutex_unlock(&gate->lock);
    return NULL;
}

int mdl_startable_threads(int n) {
    if (n <= 1 || !MDL_HAVE_OPENMP) return 1;
    /* libgomp ends the process ("Thread creation failed") when it cannot start a thread of a
     * team, so the team is tried here first: n - 1 threads (the caller is the n-th) with the
     * stack libgomp would give them, alive all at once, as a parallel region needs them. */
    pthread_t *ids = (pthread_t *)malloc((size_t)(n - 1) * sizeof *ids);
    if (!ids) return 1;
    probe_gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    pthread_attr_t attr;
    int have_attr = pthread_attr_init(&attr) == 0;
    size_t stack = omp_stack_size_from("OMP_STACKSIZE");
    if (!stack) stack = omp_stack_size_from("GOMP_STACKSIZE");
    if (have_attr && stack && pthread_attr_setstacksize(&attr, stack) != 0) {
        pthread_attr_destroy(&attr); /* libgomp ignores a size pthreads refuses, and so here */
        have_attr = pthread_attr_init(&attr) == 0;
    }
    int started = 0;
    while (started < n - 1 &&
           pthread_create(&ids[started], have_attr ? &attr : NULL, probe_wait, &gate) == 0)
        started++;
    pthread_mutex_lock(&gate.lock);
    gate.released = 1;
    pthread_cond_broadcast(&gate.open);
    pthread_mutex_unlock(&gate.lock);
    for (int i = 0; i < started; i++) pthread_join(ids[i], NULL);
    if (have_attr) pthread_attr_destroy(&attr);
    free(ids);
    return started + 1;
}

const char *mdl_compiler(void) {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
}
