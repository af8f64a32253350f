/* The image reader's per-pixel loops, compiled (optional: without a C compiler dojang uses
 * the numpy code in _sync.py, with the same values up to the order of floating-point sums).
 *
 *   cells(res, scale, theta, offset_u, offset_v) -> bytes of 1024 float64
 *       The matched-filter value of every cell of the 32 x 32 tile (docs/spec/image.md, section
 *       5.3): canonical pixel (x, y) of ``res`` sits at tile units
 *       u = (cos(theta) x + sin(theta) y) / scale + offset_u, v = (-sin(theta) x + cos(theta) y) /
 *       scale + offset_v, i.e. at cell (u / 2, v / 2); its residual is split over the four cells
 *       around it with bilinear weights (the adjoint of rendering), periodic over the tile.
 *
 *   fold(res, scale, theta) -> bytes of 4096 float64
 *       The mean residual per tile unit (64 x 64, row v, column u), every pixel in the unit
 *       nearest to it (floor(u + 0.5), floor(v + 0.5), periodic); empty units read 0.
 *
 *   coherent(out, values, width, weight, axis, cosines, sines, inv, bins, shifts) -> None
 *       The coherent search's inner loop (_sync._sync_scores, docs/spec/image.md section 5.2), for
 *       n candidates at once, S harmonics per axis (32 <= S <= 48): harmonic (b, a) of candidate
 *       i, turned by its angle to x = (float)(cos[i] axis[a] - sin[i] axis[b]) and y = (float)(sin[i]
 *       axis[a] + cos[i] axis[b]), is read from the centred spectrum ``values`` (complex64, rows x
 *       width, raveled) at the nearest bin, column (int)(x * (inv[i] * (width / 64)) + (width / 2
 *       + 0.5)) and row likewise with the number of rows (the arithmetic of _sync's numpy code, so
 *       both pick the same bins; a bin beyond the spectrum is an error), times weight[b, a]
 *       (a harmonic of weight 0 contributes nothing and is read at bin 0). The
 *       first 32 harmonics of an axis are the bins' own (bins[b] = b), the rest aliases of bin
 *       bins[b]: four grids add them in with the signs of their half-cell shifts (a grid shifted
 *       along an axis subtracts that axis's aliases). Each grid is then
 *       multiplied by its ramp (shifts, 4 x 32 x 32 complex64) and pairs of grids are packed
 *       into one spectrum whose inverse transform holds their real correlations as real and
 *       imaginary parts: out[i, p] = (q0 + i q1)[k] + conj(q0 - i q1)[-k] for the pair (q0, q1)
 *       = grids (2p, 2p + 1). ``out`` is complex64 (n, 2, 32, 32), written in place.
 *
 *   bilateral(padded, radius, offsets, spatial, inv, out, y0, y1, path=0) -> None
 *   bilateral_paths() -> list of the loops this processor runs
 *       The edge-aware residual (docs/spec/image.md, section 5.1) of rows y0 <= y < y1 of the
 *       h x w image that ``padded`` holds with ``radius`` pixels of border, written into ``out``
 *       (float32, h x w, rows apart so that threads can share it): every pixel c less the
 *       weighted mean of its neighbours v at c + offsets[k] (int32 (k, 2): row, column), each
 *       weighing spatial[k] * max(0, 1 - (v - c)^2 inv)^4; all in float32, the offsets in their
 *       order, no fused multiply-add (the numpy code's arithmetic). A pixel without weight reads 0.
 *       ``path`` picks the loop: 0 the widest the processor has (AVX-512, AVX2, then plain), or
 *       one of bilateral_paths(); every loop gives the same bits.
 *
 * ``res`` is a C-contiguous float32 2-d array (rows, columns). The loops run without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define TILE_CELLS 32
#define TILE_UNITS 64

static int get_residual(PyObject *obj, Py_buffer *view) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->ndim != 2 || view->format == NULL || strcmp(view->format, "f") != 0) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_TypeError, "res must be a C-contiguous float32 2-d array");
        return -1;
    }
    return 0;
}

/* Tile units of canonical pixel (x, y): the same operations, in the same order, as
 * _sync.tile_coords, so that both give the same bins. */
static inline void to_units(double c, double s, double scale, Py_ssize_t x, Py_ssize_t y, double *u, double *v) {
    *u = (c * (double)x + s * (double)y) / scale;
    *v = ((-s) * (double)x + c * (double)y) / scale;
}

static PyObject *cells(PyObject *self, PyObject *args) {
    PyObject *obj;
    double scale, theta, offset_u, offset_v;
    if (!PyArg_ParseTuple(args, "Odddd", &obj, &scale, &theta, &offset_u, &offset_v)) return NULL;
    Py_buffer view;
    if (get_residual(obj, &view) < 0) return NULL;
    const Py_ssize_t h = view.shape[0], w = view.shape[1];
    const float *r = (const float *)view.buf;
    double out[TILE_CELLS * TILE_CELLS];
    memset(out, 0, sizeof out);
    const double c = cos(theta), s = sin(theta);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = 0; y < h; y++) {
        for (Py_ssize_t x = 0; x < w; x++) {
            double u, v;
            to_units(c, s, scale, x, y, &u, &v);
            const double cu = (u + offset_u) / 2.0, cv = (v + offset_v) / 2.0;
            const double bu = floor(cu), bv = floor(cv);
            const double fu = cu - bu, fv = cv - bv;
            const int64_t iu = (int64_t)bu & (TILE_CELLS - 1), iv = (int64_t)bv & (TILE_CELLS - 1);
            const int64_t iu1 = (iu + 1) & (TILE_CELLS - 1), iv1 = (iv + 1) & (TILE_CELLS - 1);
            const double rr = (double)r[y * w + x];
            const double top = rr * (1.0 - fv), bottom = rr * fv;
            out[iv * TILE_CELLS + iu] += top * (1.0 - fu);
            out[iv * TILE_CELLS + iu1] += top * fu;
            out[iv1 * TILE_CELLS + iu] += bottom * (1.0 - fu);
            out[iv1 * TILE_CELLS + iu1] += bottom * fu;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)out, sizeof out);
}

static PyObject *fold(PyObject *self, PyObject *args) {
    PyObject *obj;
    double scale, theta;
    if (!PyArg_ParseTuple(args, "Odd", &obj, &scale, &theta)) return NULL;
    Py_buffer view;
    if (get_residual(obj, &view) < 0) return NULL;
    const Py_ssize_t h = view.shape[0], w = view.shape[1];
    const float *r = (const float *)view.buf;
    double sums[TILE_UNITS * TILE_UNITS];
    int64_t counts[TILE_UNITS * TILE_UNITS];
    memset(sums, 0, sizeof sums);
    memset(counts, 0, sizeof counts);
    const double c = cos(theta), s = sin(theta);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = 0; y < h; y++) {
        for (Py_ssize_t x = 0; x < w; x++) {
            double u, v;
            to_units(c, s, scale, x, y, &u, &v);
            const int64_t bu = (int64_t)floor(u + 0.5) & (TILE_UNITS - 1);
            const int64_t bv = (int64_t)floor(v + 0.5) & (TILE_UNITS - 1);
            sums[bv * TILE_UNITS + bu] += (double)r[y * w + x];
            counts[bv * TILE_UNITS + bu] += 1;
        }
    }
    for (int i = 0; i < TILE_UNITS * TILE_UNITS; i++) sums[i] /= (double)(counts[i] > 0 ? counts[i] : 1);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)sums, sizeof sums);
}

/* A C-contiguous buffer of ``count`` items of ``itemsize`` bytes (count < 0: any), writable when asked. */
static int get_flat(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, Py_ssize_t count, int writable, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) return -1;
    if (view->itemsize != itemsize || (count >= 0 && view->len != count * itemsize) || view->len % itemsize != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s has the wrong item size or length", name);
        return -1;
    }
    return 0;
}

typedef struct { float re, im; } cfloat;

#define BINS (TILE_CELLS * TILE_CELLS)

static PyObject *coherent(PyObject *self, PyObject *args) {
    PyObject *o_out, *o_values, *o_weight, *o_axis, *o_cos, *o_sin, *o_inv, *o_bins, *o_shifts;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "OOnOOOOOOO", &o_out, &o_values, &width, &o_weight, &o_axis, &o_cos, &o_sin, &o_inv, &o_bins, &o_shifts))
        return NULL;
    Py_buffer out, values, weight, axis, cosines, sines, inv, bins, shifts;
    Py_buffer *taken[] = {&inv, &bins, &weight, &axis, &cosines, &sines, &shifts, &values, &out}; /* in this order */
    int got = 0; /* how many of ``taken`` are held */
    int ok = get_flat(o_inv, &inv, 4, -1, 0, "inv") == 0 && ++got;
    const Py_ssize_t n = ok ? inv.len / 4 : 0;
    ok = ok && get_flat(o_bins, &bins, 4, -1, 0, "bins") == 0 && ++got;
    const Py_ssize_t side = ok ? bins.len / 4 : 0;
    ok = ok && get_flat(o_weight, &weight, 8, side * side, 0, "weight") == 0 && ++got;
    ok = ok && get_flat(o_axis, &axis, 8, side, 0, "axis") == 0 && ++got;
    ok = ok && get_flat(o_cos, &cosines, 8, n, 0, "cosines") == 0 && ++got;
    ok = ok && get_flat(o_sin, &sines, 8, n, 0, "sines") == 0 && ++got;
    ok = ok && get_flat(o_shifts, &shifts, 8, 4 * BINS, 0, "shifts") == 0 && ++got;
    ok = ok && get_flat(o_values, &values, 8, -1, 0, "values") == 0 && ++got;
    ok = ok && get_flat(o_out, &out, 8, n * 2 * BINS, 1, "out") == 0 && ++got;
    const Py_ssize_t rows = (ok && width > 0) ? values.len / 8 / width : 0;
    const int32_t *bin = ok ? (const int32_t *)bins.buf : NULL;
    ok = ok && side >= TILE_CELLS && side <= 48;
    for (Py_ssize_t i = 0; ok && i < side; i++) ok = i < TILE_CELLS ? bin[i] == i : (bin[i] >= 0 && bin[i] < TILE_CELLS);
    if (ok && (width <= 0 || rows * width * 8 != values.len || rows * width > INT32_MAX)) ok = 0;
    if (!ok) {
        for (int i = 0; i < got; i++) PyBuffer_Release(taken[i]);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "coherent: inconsistent sizes or bins");
        return NULL;
    }
    const cfloat *val = (const cfloat *)values.buf, *wt = (const cfloat *)weight.buf, *ramp = (const cfloat *)shifts.buf;
    const double *harm = (const double *)axis.buf, *fcos = (const double *)cosines.buf, *fsin = (const double *)sines.buf;
    const float *finv = (const float *)inv.buf;
    cfloat *dst = (cfloat *)out.buf;
    const float per_col = (float)((double)width / TILE_UNITS), per_row = (float)((double)rows / TILE_UNITS);
    const float mid_col = (float)((double)(width / 2) + 0.5), mid_row = (float)((double)(rows / 2) + 0.5);
    int outside = 0; /* a harmonic beyond the spectrum: the scale is too small for it (an error) */
    Py_BEGIN_ALLOW_THREADS
    unsigned char reach[48 * 48]; /* harmonics of weight 0 are read at bin 0 (any bin would do) */
    for (Py_ssize_t h = 0; h < side * side; h++) reach[h] = wt[h].re != 0.0f || wt[h].im != 0.0f;
    const int32_t centre = (int32_t)(rows / 2) * (int32_t)width + (int32_t)(width / 2);
    cfloat q[4][BINS];
    cfloat prod[48 * 48];
    int32_t index[48 * 48];
    float rows_plus[2 * 48 * TILE_CELLS], rows_minus[2 * 48 * TILE_CELLS]; /* (re, im) interleaved, 32 rows x side */
    for (Py_ssize_t i = 0; i < n; i++) {
        const float sc_col = finv[i] * per_col, sc_row = finv[i] * per_row;
        const double c = fcos[i], sn = fsin[i];
        /* 1. gather: F conj(T) at every harmonic (the nearest bins first, then the reads) */
        for (Py_ssize_t b = 0; b < side; b++) {
            for (Py_ssize_t a = 0; a < side; a++) {
                const Py_ssize_t h = b * side + a;
                const float x = (float)(c * harm[a] - sn * harm[b]), y = (float)(sn * harm[a] + c * harm[b]);
                const float tx = x * sc_col, ty = y * sc_row;
                const int32_t kx = (int32_t)(tx + mid_col), ky = (int32_t)(ty + mid_row);
                const int inside = kx >= 0 && kx < width && ky >= 0 && ky < rows;
                outside |= reach[h] && !inside;
                index[h] = reach[h] && inside ? ky * (int32_t)width + kx : centre;
            }
        }
        for (Py_ssize_t h = 0; h < side * side; h++) {
            const cfloat w = wt[h], f = val[index[h]];
            prod[h].re = f.re * w.re - f.im * w.im;
            prod[h].im = f.re * w.im + f.im * w.re;
        }
        /* 2. fold the rows' aliases onto their bins: sum and difference (contiguous rows) */
        const float *pf = (const float *)prod;
        const Py_ssize_t len = 2 * side;
        for (Py_ssize_t b = 0; b < TILE_CELLS; b++) {
            memcpy(rows_plus + b * len, pf + b * len, len * sizeof(float));
            memcpy(rows_minus + b * len, pf + b * len, len * sizeof(float));
        }
        for (Py_ssize_t b = TILE_CELLS; b < side; b++) {
            float *plus = rows_plus + bin[b] * len, *minus = rows_minus + bin[b] * len;
            const float *src = pf + b * len;
            for (Py_ssize_t j = 0; j < len; j++) {
                plus[j] += src[j];
                minus[j] -= src[j];
            }
        }
        /* 3. fold the columns: grids (0,0) = ++, (1,1) = --, (1,0) = -+, (0,1) = +- (rows, columns) */
        const float *srcs[4] = {rows_plus, rows_minus, rows_minus, rows_plus};
        const float col_sign[4] = {1.0f, -1.0f, 1.0f, -1.0f};
        for (int g = 0; g < 4; g++) {
            for (Py_ssize_t b = 0; b < TILE_CELLS; b++) {
                const float *row = srcs[g] + b * len;
                cfloat *dq = q[g] + b * TILE_CELLS;
                memcpy(dq, row, TILE_CELLS * sizeof(cfloat));
                for (Py_ssize_t a = TILE_CELLS; a < side; a++) {
                    dq[bin[a]].re += col_sign[g] * row[2 * a];
                    dq[bin[a]].im += col_sign[g] * row[2 * a + 1];
                }
            }
        }
        for (int g = 0; g < 4; g++) {
            for (int k = 0; k < BINS; k++) {
                const cfloat a = q[g][k], r = ramp[g * BINS + k];
                q[g][k].re = a.re * r.re - a.im * r.im;
                q[g][k].im = a.re * r.im + a.im * r.re;
            }
        }
        for (int p = 0; p < 2; p++) {
            const cfloat *q0 = q[2 * p], *q1 = q[2 * p + 1];
            cfloat *o = dst + (i * 2 + p) * BINS;
            for (int k = 0; k < BINS; k++) {
                const int ky = k / TILE_CELLS, kx = k % TILE_CELLS;
                const int m = ((TILE_CELLS - ky) % TILE_CELLS) * TILE_CELLS + (TILE_CELLS - kx) % TILE_CELLS;
                /* (q0 + i q1)[k] + conj(q0 - i q1)[m] */
                o[k].re = (q0[k].re - q1[k].im) + (q0[m].re + q1[m].im);
                o[k].im = (q0[k].im + q1[k].re) - (q0[m].im - q1[m].re);
            }
        }
    }
    Py_END_ALLOW_THREADS
    for (int i = 0; i < got; i++) PyBuffer_Release(taken[i]);
    if (outside) {
        PyErr_SetString(PyExc_ValueError, "coherent: a harmonic falls beyond the spectrum (scale too small for its size)");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* bilateral's loop: every pixel's sum over the offsets in their order, in float32 without fused
 * multiply-add, so that every version below gives the numpy code's bits. */
static inline float bilateral_pixel(const float *p, const Py_ssize_t *delta, const float *sp, Py_ssize_t k, float inv) {
    float c = *p, num = 0.0f, den = 0.0f;
    for (Py_ssize_t j = 0; j < k; j++) {
        float v = p[delta[j]];
        float d = v - c;
        float u = 1.0f - d * d * inv;
        u = u > 0.0f ? u : 0.0f;
        u = u * u;
        float wt = sp[j] * (u * u);
        num += wt * v;
        den += wt;
    }
    return den > 0.0f ? c - num / den : 0.0f;
}

static void bilateral_rows_plain(const float *src, float *dst, const Py_ssize_t *delta, const float *sp, Py_ssize_t k,
                                 Py_ssize_t y0, Py_ssize_t y1, Py_ssize_t w, Py_ssize_t cols, int radius, float inv) {
    for (Py_ssize_t y = y0; y < y1; y++) {
        const float *row = src + (y + radius) * cols + radius;
        for (Py_ssize_t x = 0; x < w; x++) dst[y * w + x] = bilateral_pixel(row + x, delta, sp, k, inv);
    }
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
/* Eight pixels at a time with their sums in registers (the same operations, lane by lane; max(u, 0)
 * is exactly the plain code's select for every finite u). */
__attribute__((target("avx2"))) static void bilateral_rows_avx2(const float *src, float *dst, const Py_ssize_t *delta,
                                                                const float *sp, Py_ssize_t k, Py_ssize_t y0, Py_ssize_t y1,
                                                                Py_ssize_t w, Py_ssize_t cols, int radius, float inv) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps(), vinv = _mm256_set1_ps(inv);
    for (Py_ssize_t y = y0; y < y1; y++) {
        const float *row = src + (y + radius) * cols + radius;
        Py_ssize_t x = 0;
        for (; x + 8 <= w; x += 8) {
            const float *p = row + x;
            __m256 c = _mm256_loadu_ps(p), num = zero, den = zero;
            for (Py_ssize_t j = 0; j < k; j++) {
                __m256 v = _mm256_loadu_ps(p + delta[j]);
                __m256 d = _mm256_sub_ps(v, c);
                __m256 u = _mm256_sub_ps(one, _mm256_mul_ps(_mm256_mul_ps(d, d), vinv));
                u = _mm256_max_ps(u, zero);
                u = _mm256_mul_ps(u, u);
                __m256 wt = _mm256_mul_ps(_mm256_set1_ps(sp[j]), _mm256_mul_ps(u, u));
                num = _mm256_add_ps(num, _mm256_mul_ps(wt, v));
                den = _mm256_add_ps(den, wt);
            }
            __m256 has = _mm256_cmp_ps(den, zero, _CMP_GT_OQ);
            __m256 safe = _mm256_blendv_ps(one, den, has);
            __m256 r = _mm256_sub_ps(c, _mm256_div_ps(num, safe));
            _mm256_storeu_ps(dst + y * w + x, _mm256_blendv_ps(zero, r, has));
        }
        for (; x < w; x++) dst[y * w + x] = bilateral_pixel(row + x, delta, sp, k, inv);
    }
}

/* Sixteen pixels at a time: the AVX2 loop's operations on twice the lanes (half the instructions;
 * the sums are in registers either way). The last pixels of a row take the plain loop. */
__attribute__((target("avx512f"))) static void bilateral_rows_avx512(const float *src, float *dst, const Py_ssize_t *delta,
                                                                    const float *sp, Py_ssize_t k, Py_ssize_t y0,
                                                                    Py_ssize_t y1, Py_ssize_t w, Py_ssize_t cols, int radius,
                                                                    float inv) {
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps(), vinv = _mm512_set1_ps(inv);
    for (Py_ssize_t y = y0; y < y1; y++) {
        const float *row = src + (y + radius) * cols + radius;
        Py_ssize_t x = 0;
        for (; x + 16 <= w; x += 16) {
            const float *p = row + x;
            __m512 c = _mm512_loadu_ps(p), num = zero, den = zero;
            for (Py_ssize_t j = 0; j < k; j++) {
                __m512 v = _mm512_loadu_ps(p + delta[j]);
                __m512 d = _mm512_sub_ps(v, c);
                __m512 u = _mm512_sub_ps(one, _mm512_mul_ps(_mm512_mul_ps(d, d), vinv));
                u = _mm512_max_ps(u, zero);
                u = _mm512_mul_ps(u, u);
                __m512 wt = _mm512_mul_ps(_mm512_set1_ps(sp[j]), _mm512_mul_ps(u, u));
                num = _mm512_add_ps(num, _mm512_mul_ps(wt, v));
                den = _mm512_add_ps(den, wt);
            }
            __mmask16 has = _mm512_cmp_ps_mask(den, zero, _CMP_GT_OQ);
            __m512 safe = _mm512_mask_blend_ps(has, one, den);
            __m512 r = _mm512_sub_ps(c, _mm512_div_ps(num, safe));
            _mm512_storeu_ps(dst + y * w + x, _mm512_maskz_mov_ps(has, r));
        }
        for (; x < w; x++) dst[y * w + x] = bilateral_pixel(row + x, delta, sp, k, inv);
    }
}
#endif

/* The loop bilateral runs: the widest this processor has, or the one asked for (tests compare them). */
enum { PATH_BEST = 0, PATH_PLAIN = 1, PATH_AVX2 = 2, PATH_AVX512 = 3 };

static int path_supported(int path) {
    switch (path) {
    case PATH_PLAIN:
        return 1;
#ifdef HAVE_AVX2_PATH
    case PATH_AVX2:
        return __builtin_cpu_supports("avx2");
    case PATH_AVX512:
        return __builtin_cpu_supports("avx512f");
#endif
    default:
        return 0;
    }
}

static int best_path(void) {
    if (path_supported(PATH_AVX512)) return PATH_AVX512;
    if (path_supported(PATH_AVX2)) return PATH_AVX2;
    return PATH_PLAIN;
}

static PyObject *bilateral_paths(PyObject *self, PyObject *args) {
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    for (int path = PATH_PLAIN; path <= PATH_AVX512; path++) {
        if (!path_supported(path)) continue;
        PyObject *n = PyLong_FromLong(path);
        if (n == NULL || PyList_Append(out, n) < 0) {
            Py_XDECREF(n);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(n);
    }
    return out;
}

static PyObject *bilateral(PyObject *self, PyObject *args) {
    PyObject *o_img, *o_offsets, *o_spatial, *o_out;
    int radius;
    float inv;
    Py_ssize_t y0, y1;
    int path = PATH_BEST;
    if (!PyArg_ParseTuple(args, "OiOOfOnn|i", &o_img, &radius, &o_offsets, &o_spatial, &inv, &o_out, &y0, &y1, &path))
        return NULL;
    if (path == PATH_BEST) path = best_path();
    if (!path_supported(path)) {
        PyErr_Format(PyExc_ValueError, "bilateral: loop %d is not available on this processor (see bilateral_paths())", path);
        return NULL;
    }
    Py_buffer img, offsets, spatial, out;
    if (get_residual(o_img, &img) < 0) return NULL;
    Py_ssize_t rows = img.shape[0], cols = img.shape[1];
    Py_ssize_t h = rows - 2 * (Py_ssize_t)radius, w = cols - 2 * (Py_ssize_t)radius;
    if (radius < 1 || h < 1 || w < 1 || y0 < 0 || y1 > h || y0 > y1) {
        PyBuffer_Release(&img);
        PyErr_SetString(PyExc_ValueError, "bilateral: the padded image must be wider than twice the radius, the rows within it");
        return NULL;
    }
    if (get_flat(o_spatial, &spatial, 4, -1, 0, "spatial") < 0) {
        PyBuffer_Release(&img);
        return NULL;
    }
    Py_ssize_t k = spatial.len / 4;
    if (get_flat(o_offsets, &offsets, 4, 2 * k, 0, "offsets") < 0) {
        PyBuffer_Release(&img);
        PyBuffer_Release(&spatial);
        return NULL;
    }
    if (get_flat(o_out, &out, 4, h * w, 1, "out") < 0) {
        PyBuffer_Release(&img);
        PyBuffer_Release(&spatial);
        PyBuffer_Release(&offsets);
        return NULL;
    }
    const int32_t *off = (const int32_t *)offsets.buf;
    int bad = 0;
    for (Py_ssize_t j = 0; j < 2 * k; j++) bad |= off[j] < -radius || off[j] > radius;
    Py_ssize_t *delta = bad ? NULL : PyMem_Malloc((size_t)(k > 0 ? k : 1) * sizeof(Py_ssize_t));
    if (delta == NULL) {
        PyBuffer_Release(&img);
        PyBuffer_Release(&spatial);
        PyBuffer_Release(&offsets);
        PyBuffer_Release(&out);
        if (bad) PyErr_SetString(PyExc_ValueError, "bilateral: an offset lies beyond the radius");
        else PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t j = 0; j < k; j++) delta[j] = (Py_ssize_t)off[2 * j] * cols + off[2 * j + 1];
    const float *src = (const float *)img.buf, *sp = (const float *)spatial.buf;
    float *dst = (float *)out.buf;
    Py_BEGIN_ALLOW_THREADS
#ifdef HAVE_AVX2_PATH
    if (path == PATH_AVX512)
        bilateral_rows_avx512(src, dst, delta, sp, k, y0, y1, w, cols, radius, inv);
    else if (path == PATH_AVX2)
        bilateral_rows_avx2(src, dst, delta, sp, k, y0, y1, w, cols, radius, inv);
    else
#endif
        bilateral_rows_plain(src, dst, delta, sp, k, y0, y1, w, cols, radius, inv);
    Py_END_ALLOW_THREADS
    PyMem_Free(delta);
    PyBuffer_Release(&img);
    PyBuffer_Release(&spatial);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"cells", cells, METH_VARARGS, "cells(res, scale, theta, offset_u, offset_v) -> 1024 float64 (bytes)"},
    {"fold", fold, METH_VARARGS, "fold(res, scale, theta) -> 4096 float64 (bytes)"},
    {"coherent", coherent, METH_VARARGS, "coherent(out, values, width, weight, axis, cosines, sines, inv, bins, shifts) -> None"},
    {"bilateral", bilateral, METH_VARARGS, "bilateral(padded, radius, offsets, spatial, inv, out, y0, y1, path=0) -> None"},
    {"bilateral_paths", bilateral_paths, METH_NOARGS, "bilateral_paths() -> the loops this processor can run (1 plain, 2 AVX2, 3 AVX-512)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_splat", "The image reader's per-pixel loops.", -1, methods};

PyMODINIT_FUNC PyInit__splat(void) { return PyModule_Create(&module); }
