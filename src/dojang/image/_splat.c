/* The image reader's two per-pixel loops, compiled (optional: without a C compiler dojang uses
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

static PyMethodDef methods[] = {
    {"cells", cells, METH_VARARGS, "cells(res, scale, theta, offset_u, offset_v) -> 1024 float64 (bytes)"},
    {"fold", fold, METH_VARARGS, "fold(res, scale, theta) -> 4096 float64 (bytes)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_splat", "The image reader's per-pixel loops.", -1, methods};

PyMODINIT_FUNC PyInit__splat(void) { return PyModule_Create(&module); }
