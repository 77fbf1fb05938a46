/*
 * The compiled engine of dilated correlation (optional: dilcli falls back to numpy).
 *
 *   out[i, j, c] = sum_t w_t * x_ext[rowmap[i + a_t*d0], colmap[j + b_t*d1], c]
 *
 * rowmap and the column map are the boundary's index maps, computed in Python
 * (-1 means the constant value). Work items are (row, chunk of columns), the chunks cut so that
 * border columns are chunks of their own; items run on OpenMP
 * threads with the GIL released. Within an item, each tap's source is a pointer
 * straight into x when its columns are a plain run of the input (the interior),
 * and a small gathered copy only at the borders. Outputs are accumulated in tiles
 * that stay in registers, so each output is written once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>


#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FAST_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FAST_CLONES
#endif

typedef struct {
    const char *x;
    char *out;
    Py_ssize_t W, C, Ho, Wo;
    const int64_t *rowmap;
    /* column map: col_left[p] for p < col_lo, col_right[p - col_hi] for p >= col_hi,
     * p - col_shift in between (the interior, never materialised: a signal of 10^7
     * samples would otherwise need an index array as big as itself) */
    const int64_t *col_left, *col_right;
    Py_ssize_t col_lo, col_hi, col_shift;
    Py_ssize_t ntaps;
    const int64_t *ta, *tb;
    const double *tw;
    Py_ssize_t d0, d1;
    double cval;
    const int64_t *starts; /* column chunks: [starts[k], starts[k + 1]) */
    Py_ssize_t nchunks;
} job_t;

/* Tiles of 8 vectors of 32 bytes: GCC vector extensions keep the accumulators in
 * registers across the loop over taps (a plain array would be kept in memory). */
static inline int64_t col_at(const job_t *job, Py_ssize_t p) {
    if (p < job->col_lo) return job->col_left[p];
    if (p >= job->col_hi) return job->col_right[p - job->col_hi];
    return p - job->col_shift;
}

#define DEFINE_ENGINE(T, NAME)                                                          \
    typedef T NAME##_vec __attribute__((vector_size(32)));                            \
    typedef T NAME##_uvec __attribute__((vector_size(32), aligned(sizeof(T))));       \
    enum { NAME##_LANES = 32 / sizeof(T), NAME##_TILE = 8 * (32 / sizeof(T)) };       \
    FAST_CLONES static void NAME##_tiles(T *dst, const T *const *src, const T *w,    \
                                         Py_ssize_t ntaps, Py_ssize_t n) {           \
        const Py_ssize_t L = NAME##_LANES;                                            \
        Py_ssize_t k0 = 0;                                                            \
        for (; k0 + NAME##_TILE <= n; k0 += NAME##_TILE) {                            \
            NAME##_vec a[8];                                                          \
            const T *s = src[0] + k0;                                                 \
            for (int v = 0; v < 8; v++) a[v] = w[0] * *(const NAME##_uvec *)(s + v * L); \
            for (Py_ssize_t t = 1; t < ntaps; t++) {                                  \
                const T *st = src[t] + k0;                                            \
                const T wt = w[t];                                                    \
                for (int v = 0; v < 8; v++) a[v] += wt * *(const NAME##_uvec *)(st + v * L); \
            }                                                                         \
            for (int v = 0; v < 8; v++) *(NAME##_uvec *)(dst + k0 + v * L) = a[v];    \
        }                                                                             \
        for (Py_ssize_t k = k0; k < n; k++) {                                         \
            T acc = w[0] * src[0][k];                                                 \
            for (Py_ssize_t t = 1; t < ntaps; t++) acc += w[t] * src[t][k];           \
            dst[k] = acc;                                                             \
        }                                                                             \
    }                                                                                 \
                                                                                      \
    static void NAME##_item(const job_t *job, Py_ssize_t item, T *scratch,            \
                            const T **src, T *w) {                                    \
        const Py_ssize_t C = job->C, W = job->W;                                      \
        const Py_ssize_t i = item / job->nchunks;                                     \
        const Py_ssize_t j0 = job->starts[item % job->nchunks];                       \
        const Py_ssize_t j1 = job->starts[item % job->nchunks + 1];                   \
        const Py_ssize_t cols = j1 - j0, n = cols * C;                                \
        const T *x = (const T *)job->x;                                               \
        T *out = (T *)job->out + (i * job->Wo + j0) * C;                              \
        for (Py_ssize_t t = 0; t < job->ntaps; t++) {                                 \
            const int64_t r = job->rowmap[i + job->ta[t] * job->d0];                  \
            const Py_ssize_t p0 = j0 + job->tb[t] * job->d1;                          \
            const int64_t first = col_at(job, p0), last = col_at(job, p0 + cols - 1); \
            w[t] = (T)job->tw[t];                                                     \
            if (r >= 0 && first >= 0 && last - first == cols - 1) {                   \
                /* a plain run of columns: read the input where it lies */            \
                src[t] = x + (r * W + first) * C;                                     \
                continue;                                                             \
            }                                                                         \
            T *buffer = scratch + t * n;                                              \
            for (Py_ssize_t q = 0; q < cols; q++) {                                   \
                const int64_t col = col_at(job, p0 + q);                              \
                if (r < 0 || col < 0) {                                               \
                    for (Py_ssize_t c = 0; c < C; c++) buffer[q * C + c] = (T)job->cval; \
                } else {                                                              \
                    memcpy(buffer + q * C, x + (r * W + col) * C, C * sizeof(T));     \
                }                                                                     \
            }                                                                         \
            src[t] = buffer;                                                          \
        }                                                                             \
        NAME##_tiles(out, src, w, job->ntaps, n);                                     \
    }

DEFINE_ENGINE(float, f32)
DEFINE_ENGINE(double, f64)

static int run(const job_t *job, int is_double, int threads) {
    const Py_ssize_t items = job->Ho * job->nchunks;
    const size_t item_size = is_double ? sizeof(double) : sizeof(float);
    Py_ssize_t widest = 0;
    for (Py_ssize_t k = 0; k < job->nchunks; k++)
        if (job->starts[k + 1] - job->starts[k] > widest) widest = job->starts[k + 1] - job->starts[k];
    const size_t values = (size_t)job->ntaps * (size_t)(widest * job->C);
    int failed = 0;
#pragma omp parallel num_threads(threads) if (threads > 1 && items > 1)
    {
        void *scratch = malloc(values * item_size);
        const void **src = malloc(sizeof(void *) * (size_t)job->ntaps);
        void *w = malloc(item_size * (size_t)job->ntaps);
        const int ready = scratch && src && w;
        if (!ready) {
#pragma omp atomic write
            failed = 1;
        }
        /* every thread must meet the worksharing loop, ready or not */
#pragma omp for schedule(static)
        for (Py_ssize_t item = 0; item < items; item++) {
            if (!ready) continue;
            if (is_double)
                f64_item(job, item, (double *)scratch, (const double **)src, (double *)w);
            else
                f32_item(job, item, (float *)scratch, (const float **)src, (float *)w);
        }
        free(scratch);
        free((void *)src);
        free(w);
    }
    return failed;
}

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous buffer", name);
        return -1;
    }
    return 0;
}

static PyObject *correlate(PyObject *self, PyObject *args) {
    PyObject *xo, *outo, *rowo, *lefto, *righto, *tao, *tbo, *two, *starto;
    job_t job;
    int threads;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOnnnnnnnnndi", &xo, &outo, &rowo, &lefto, &righto,
                          &tao, &tbo, &two, &starto, &job.col_lo, &job.col_hi, &job.col_shift,
                          &job.W, &job.C, &job.Ho, &job.Wo, &job.d0, &job.d1, &job.cval,
                          &threads))
        return NULL;
    Py_buffer bx, bo, br, bl, bq, ba, bb, bw, bs;
    Py_buffer *views[] = {&bx, &bo, &br, &bl, &bq, &ba, &bb, &bw, &bs};
    PyObject *objs[] = {xo, outo, rowo, lefto, righto, tao, tbo, two, starto};
    const char *names[] = {"x", "out", "rowmap", "left columns", "right columns",
                           "tap rows", "tap cols", "weights", "chunk starts"};
    int got = 0;
    for (; got < 9; got++) {
        if (get_buffer(objs[got], views[got], got == 1, names[got]) < 0) break;
    }
    PyObject *result = NULL;
    if (got == 9) {
        int is_double = bx.format[0] == 'd';
        if (bx.format[0] != bo.format[0] || (bx.format[0] != 'f' && !is_double)) {
            PyErr_SetString(PyExc_TypeError, "x and out must both be float32 or float64");
        } else {
            job.x = bx.buf;
            job.out = bo.buf;
            job.rowmap = br.buf;
            job.col_left = bl.buf;
            job.col_right = bq.buf;
            job.ta = ba.buf;
            job.tb = bb.buf;
            job.tw = bw.buf;
            job.ntaps = ba.len / (Py_ssize_t)sizeof(int64_t);
            job.starts = bs.buf;
            job.nchunks = bs.len / (Py_ssize_t)sizeof(int64_t) - 1;
            int failed;
            Py_BEGIN_ALLOW_THREADS
            failed = run(&job, is_double, threads);
            Py_END_ALLOW_THREADS
            if (failed) {
                PyErr_NoMemory();
            } else {
                Py_INCREF(Py_None);
                result = Py_None;
            }
        }
    }
    for (int k = 0; k < got; k++) PyBuffer_Release(views[k]);
    return result;
}

static PyMethodDef methods[] = {
    {"correlate", correlate, METH_VARARGS, "Dilated correlation by taps; see dilcli/_engine.py."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cengine", NULL, -1, methods};

PyMODINIT_FUNC PyInit__cengine(void) { return PyModule_Create(&module); }
