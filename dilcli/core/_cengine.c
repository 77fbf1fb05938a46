/*
 * The compiled engine of dilated correlation (optional: dilcli falls back to numpy).
 *
 *   out[i, j, c] = sum_t w_t * x_ext[i + a_t*d0 - o0, j + b_t*d1 - o1, c]
 *
 * x_ext is x extended by the boundary rule, computed per position (boundary_index).
 * Work items are (row, chunk of columns), the chunks cut so that border columns are
 * chunks of their own; items run on OpenMP threads with the GIL released. Within an
 * item, each tap's source is a pointer straight into x when its columns are a plain
 * run of the input (the interior), and a small gathered copy only at the borders.
 * Outputs are accumulated in tiles that stay in registers, so each output is written
 * once per group of taps: the taps whose gathered copies fit SCRATCH_VALUES (all of
 * them for any ordinary kernel), so memory never grows with taps x samples.
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
    Py_ssize_t H, o0, o1;
    int boundary; /* BOUNDARY_* */
    Py_ssize_t ntaps;
    const int64_t *ta, *tb;
    const double *tw;
    Py_ssize_t d0, d1;
    double cval;
    const int64_t *starts; /* column chunks: [starts[k], starts[k + 1]) */
    Py_ssize_t nchunks;
} job_t;

/* Values of gathered (border) sources a thread holds at once: 2 MiB of doubles. Taps
 * beyond what fits run in further groups, so memory is independent of the kernel. */
#define SCRATCH_VALUES ((Py_ssize_t)1 << 18)

/* Tiles of 8 vectors of 32 bytes: GCC vector extensions keep the accumulators in
 * registers across the loop over taps (a plain array would be kept in memory). */
enum { BOUNDARY_CONSTANT, BOUNDARY_NEAREST, BOUNDARY_WRAP, BOUNDARY_REFLECT, BOUNDARY_MIRROR };

static inline Py_ssize_t modulo(Py_ssize_t a, Py_ssize_t n) {
    Py_ssize_t r = a % n;
    return r < 0 ? r + n : r;
}

/* Index in [0, n) that position p (any integer) reads, by scipy.ndimage's rules;
 * -1 for the constant value. Computed, not tabulated: memory stays independent of
 * the dilation. */
static inline Py_ssize_t boundary_index(Py_ssize_t p, Py_ssize_t n, int boundary) {
    if (p >= 0 && p < n) return p;
    switch (boundary) {
        case BOUNDARY_NEAREST:
            return p < 0 ? 0 : n - 1;
        case BOUNDARY_WRAP:
            return modulo(p, n);
        case BOUNDARY_REFLECT: { /* d c b a | a b c d | d c b a, period 2n */
            Py_ssize_t j = modulo(p, 2 * n);
            return j < n ? j : 2 * n - 1 - j;
        }
        case BOUNDARY_MIRROR: { /* d c b | a b c d | c b a, period 2n - 2 */
            if (n == 1) return 0;
            Py_ssize_t j = modulo(p, 2 * n - 2);
            return j < n ? j : 2 * n - 2 - j;
        }
        default:
            return -1;
    }
}

#define DEFINE_ENGINE(T, NAME)                                                          \
    typedef T NAME##_vec __attribute__((vector_size(32)));                            \
    typedef T NAME##_uvec __attribute__((vector_size(32), aligned(sizeof(T))));       \
    enum { NAME##_LANES = 32 / sizeof(T), NAME##_TILE = 8 * (32 / sizeof(T)) };       \
    FAST_CLONES static void NAME##_tiles(T *dst, const T *const *src, const T *w,    \
                                         Py_ssize_t ntaps, Py_ssize_t n, int add) {  \
        const Py_ssize_t L = NAME##_LANES;                                            \
        Py_ssize_t k0 = 0;                                                            \
        for (; k0 + NAME##_TILE <= n; k0 += NAME##_TILE) {                            \
            NAME##_vec a[8];                                                          \
            const T *s = src[0] + k0;                                                 \
            for (int v = 0; v < 8; v++) a[v] = w[0] * *(const NAME##_uvec *)(s + v * L); \
            if (add)                                                                  \
                for (int v = 0; v < 8; v++) a[v] += *(const NAME##_uvec *)(dst + k0 + v * L); \
            for (Py_ssize_t t = 1; t < ntaps; t++) {                                  \
                const T *st = src[t] + k0;                                            \
                const T wt = w[t];                                                    \
                for (int v = 0; v < 8; v++) a[v] += wt * *(const NAME##_uvec *)(st + v * L); \
            }                                                                         \
            for (int v = 0; v < 8; v++) *(NAME##_uvec *)(dst + k0 + v * L) = a[v];    \
        }                                                                             \
        for (Py_ssize_t k = k0; k < n; k++) {                                         \
            T acc = w[0] * src[0][k];                                                 \
            if (add) acc += dst[k];                                                   \
            for (Py_ssize_t t = 1; t < ntaps; t++) acc += w[t] * src[t][k];           \
            dst[k] = acc;                                                             \
        }                                                                             \
    }                                                                                 \
                                                                                      \
    static void NAME##_item(const job_t *job, Py_ssize_t item, T *scratch,            \
                            const T **src, T *w, Py_ssize_t group) {                  \
        const Py_ssize_t C = job->C, W = job->W;                                      \
        const Py_ssize_t i = item / job->nchunks;                                     \
        const Py_ssize_t j0 = job->starts[item % job->nchunks];                       \
        const Py_ssize_t j1 = job->starts[item % job->nchunks + 1];                   \
        const Py_ssize_t cols = j1 - j0, n = cols * C;                                \
        const T *x = (const T *)job->x;                                               \
        T *out = (T *)job->out + (i * job->Wo + j0) * C;                              \
        /* Taps in groups that fit the scratch; later groups add to the outputs. */   \
        for (Py_ssize_t t0 = 0; t0 < job->ntaps; t0 += group) {                       \
            const Py_ssize_t g = job->ntaps - t0 < group ? job->ntaps - t0 : group;   \
            for (Py_ssize_t u = 0; u < g; u++) {                                      \
                const Py_ssize_t t = t0 + u;                                          \
                const Py_ssize_t r =                                                  \
                    boundary_index(i + job->ta[t] * job->d0 - job->o0, job->H,        \
                                   job->boundary);                                    \
                const Py_ssize_t p0 = j0 + job->tb[t] * job->d1 - job->o1;            \
                w[u] = (T)job->tw[t];                                                 \
                if (r >= 0 && p0 >= 0 && p0 + cols <= W) {                            \
                    /* columns inside the input: read it where it lies */             \
                    src[u] = x + (r * W + p0) * C;                                    \
                    continue;                                                         \
                }                                                                     \
                T *buffer = scratch + u * n;                                          \
                for (Py_ssize_t q = 0; q < cols; q++) {                               \
                    const Py_ssize_t col = boundary_index(p0 + q, W, job->boundary);  \
                    if (r < 0 || col < 0) {                                           \
                        for (Py_ssize_t c = 0; c < C; c++)                            \
                            buffer[q * C + c] = (T)job->cval;                         \
                    } else {                                                          \
                        memcpy(buffer + q * C, x + (r * W + col) * C, C * sizeof(T)); \
                    }                                                                 \
                }                                                                     \
                src[u] = buffer;                                                      \
            }                                                                         \
            NAME##_tiles(out, src, w, g, n, t0 > 0);                                  \
        }                                                                             \
    }

DEFINE_ENGINE(float, f32)
DEFINE_ENGINE(double, f64)

static int run(const job_t *job, int is_double, int threads) {
    const Py_ssize_t items = job->Ho * job->nchunks;
    const size_t item_size = is_double ? sizeof(double) : sizeof(float);
    Py_ssize_t widest = 0;
    for (Py_ssize_t k = 0; k < job->nchunks; k++)
        if (job->starts[k + 1] - job->starts[k] > widest)
            widest = job->starts[k + 1] - job->starts[k];
    /* Scratch for at most SCRATCH_VALUES gathered values (and at least one tap). */
    const Py_ssize_t width = widest * job->C > 0 ? widest * job->C : 1;
    Py_ssize_t group = SCRATCH_VALUES / width;
    if (group < 1) group = 1;
    if (group > job->ntaps) group = job->ntaps;
    const size_t values = (size_t)group * (size_t)width;
    int failed = 0;
#pragma omp parallel num_threads(threads) if (threads > 1 && items > 1)
    {
        void *scratch = malloc(values * item_size);
        const void **src = malloc(sizeof(void *) * (size_t)group);
        void *w = malloc(item_size * (size_t)group);
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
                f64_item(job, item, (double *)scratch, (const double **)src, (double *)w, group);
            else
                f32_item(job, item, (float *)scratch, (const float **)src, (float *)w, group);
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
    PyObject *xo, *outo, *tao, *tbo, *two, *starto;
    job_t job;
    int threads;
    if (!PyArg_ParseTuple(args, "OOOOOOnnnnnnnnnidi", &xo, &outo, &tao, &tbo, &two, &starto,
                          &job.H, &job.W, &job.C, &job.Ho, &job.Wo, &job.d0, &job.d1, &job.o0,
                          &job.o1, &job.boundary, &job.cval, &threads))
        return NULL;
    if (job.boundary < BOUNDARY_CONSTANT || job.boundary > BOUNDARY_MIRROR) {
        PyErr_SetString(PyExc_ValueError, "unknown boundary code");
        return NULL;
    }
    Py_buffer bx, bo, ba, bb, bw, bs;
    Py_buffer *views[] = {&bx, &bo, &ba, &bb, &bw, &bs};
    PyObject *objs[] = {xo, outo, tao, tbo, two, starto};
    const char *names[] = {"x", "out", "tap rows", "tap cols", "weights", "chunk starts"};
    int got = 0;
    for (; got < 6; got++) {
        if (get_buffer(objs[got], views[got], got == 1, names[got]) < 0) break;
    }
    PyObject *result = NULL;
    if (got == 6) {
        int is_double = bx.format[0] == 'd';
        if (bx.format[0] != bo.format[0] || (bx.format[0] != 'f' && !is_double)) {
            PyErr_SetString(PyExc_TypeError, "x and out must both be float32 or float64");
        } else {
            job.x = bx.buf;
            job.out = bo.buf;
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
