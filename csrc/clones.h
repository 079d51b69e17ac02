/* clones.h - MDL_CLONES: compile a function for AVX-512F, AVX2 and baseline x86-64, the
 * dynamic loader picking one from cpuid (GCC/clang target_clones, through an ifunc), where
 * the toolchain can (x86 ELF with glibc); elsewhere it expands to nothing. Include it after
 * a libc header, which defines __GLIBC__. Internal to csrc/. */
#ifndef MDL_CLONES_H
#define MDL_CLONES_H

#if defined(__GNUC__) && defined(__ELF__) && defined(__GLIBC__) && \
    (defined(__x86_64__) || defined(__i386__)) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define MDL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef MDL_CLONES
#define MDL_CLONES
#endif

#endif
