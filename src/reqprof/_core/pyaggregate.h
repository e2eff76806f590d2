/* pyaggregate.h - the Python face of per-route aggregates (module.c adds
 * it to `reqprof._core`): the `Aggregate` type and the histogram
 * functions `hist_merge` and `hist_quantiles`. */
#ifndef RP_PYAGGREGATE_H
#define RP_PYAGGREGATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Adds `Aggregate` and the functions to module `m` (whose `Session`
 * type an Aggregate accepts). Returns the new type (a new reference, for
 * the module state), or NULL with an exception set. */
PyTypeObject *rp_pyaggregate_init(PyObject *m);

#endif
