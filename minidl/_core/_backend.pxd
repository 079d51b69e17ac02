# Cross-module C API of minidl._core._backend for other Cython modules:
#     from minidl._core._backend cimport num_threads, sgemm, dgemm
# Every prange in minidl passes num_threads=num_threads(), so one setting governs them all.
# sgemm/dgemm return 0, or -1 when their packing buffers could not be allocated.

cdef int num_threads() noexcept nogil

cdef int sgemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha,
                const float *a, Py_ssize_t rs_a, Py_ssize_t cs_a,
                const float *b, Py_ssize_t rs_b, Py_ssize_t cs_b,
                float beta, float *c, Py_ssize_t rs_c, Py_ssize_t cs_c) noexcept nogil

cdef int dgemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha,
                const double *a, Py_ssize_t rs_a, Py_ssize_t cs_a,
                const double *b, Py_ssize_t rs_b, Py_ssize_t cs_b,
                double beta, double *c, Py_ssize_t rs_c, Py_ssize_t cs_c) noexcept nogil
