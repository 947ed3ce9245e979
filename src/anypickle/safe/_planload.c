/* The planned load of anypickle.safe, in C: the per-load half of anypickle.safe._planned.
 *
 * _opwalk.safe_plan() gives a stream's plan: per global occurrence (in the order the C unpickler
 * calls find_class) how the stream uses it, per BUILD how its state was made, and the stream
 * rewritten so that every BUILD is a call of a function an inserted GLOBAL `_ _` puts on the stack.
 * planned_load() runs that rewritten stream in the C unpickler with three hooks written here, so a
 * small load pays no Python frame of ours:
 *
 *  - find_class (a method of the load's PlanState): the k-th call resolves the plan's k-th
 *    occurrence through a decision that anypickle.safe._planned.decide() makes once per (module,
 *    name, Python 2 names, bits) and caches: the real global, a checking wrapper (PlanCall) for the
 *    callables the static pass has argument rules for, or NeedsScan;
 *  - PlanCall: applies that callable's rule (_scanner._rules._arg_problem's, and for numpy's
 *    reconstructors the numpy guard's, _numpy_guard.NumpyGuard) to the real arguments, knowing from
 *    the plan which positions hold literals and which call results;
 *  - the PlanState itself is the BUILD function: numpy's dtypes and arrays are checked as
 *    NumpyGuard checks them (a dtype's state is compared with what numpy writes, through the same
 *    cache of verified states, and Python's NumpyGuard code on a miss); any other BUILD runs only
 *    where the C unpickler and pickle.py agree on it.
 *
 * Every refusal here raises NeedsScan, and planned_load() turns any Exception into MISS: the caller
 * then runs the static pass and the checked load, which accept or refuse the stream and name what is
 * wrong. So this file may only ever accept a subset of what that path accepts; tests/
 * test_safe_planned.py checks it against the static path on ordinary, adversarial and generated
 * streams.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

/* The plan's bits (_opwalk.c, "The plan") */
#define O_CALL 1
#define O_NEWOBJ 2
#define O_VALUE 4
#define O_MODIFIED 8
#define P_IS(i) ((uint64_t)1 << (8 + (i)))
#define P_HAS(i) ((uint64_t)1 << (24 + (i)))
#define B_IS 1
#define OCC_BUILDER ((uint64_t)1 << 62)
/* an array's BUILD state (1, shape, dtype, is_fortran, data): all but the dtype and data literals */
#define ARRAY_LITERALS (P_HAS(0) | P_HAS(1) | P_HAS(3))

/* What decide() returns: (kind, object, names numpy, rule, argument). */
enum { K_REAL = 0, K_WRAP = 1, K_SCAN = 2 };
enum {
    R_ENCODE = 1,       /* _codecs.encode(<str>, 'latin1') */
    R_BYTES,            /* bytes/bytearray(<str or bytes literal, or encode's result>[, 'latin1']) */
    R_DECIMAL,          /* Decimal(<str>) */
    R_DEFAULTDICT,      /* defaultdict(None or a global of this load, ...) */
    R_RECONSTRUCTOR,    /* copyreg._reconstructor(<inert class>, object, state) */
    R_NEWOBJ,           /* copyreg.__newobj__(<inert class>, ...) */
    R_NP_DTYPE,         /* numpy.dtype(str, bool, True) */
    R_NP_RECONSTRUCT,   /* _reconstruct(numpy.ndarray, (0,), b'b') */
    R_NP_SCALAR,        /* scalar(<sealed dtype>, bytes) */
    R_NP_FROMBUFFER,    /* _frombuffer(buffer, <sealed dtype>, shape, 'C' or 'F') */
    R_LAST,
};
/* R_BYTES's argument bits */
#define BYTES_FIRST_MADE 1
#define BYTES_FIRST_ENCODED 2

/* Set once by configure() (anypickle.safe._planned). */
static PyObject *unpickler_type;  /* _planned._PlannedUnpickler */
static PyObject *bytesio_type;    /* io.BytesIO */
static PyObject *decisions;       /* dict (module, name, py2, bits) -> decision */
static PyObject *decide;          /* (module, name, py2, bits) -> decision, caching it */
static PyObject *NeedsScan;       /* _planned.NeedsScan */
static PyObject *inert_class_fn;  /* cls -> bool: cls is an inert class without argument rules */
static PyObject *numpy_fn;        /* () -> (classes, dtype type, ndarray type, verified, verify, nested_key) */
static PyObject *inert_decisions; /* dict (module, name, py2) -> the global, or None: the inert-only load */
static PyObject *inert_decide;    /* (module, name, py2) -> the global or None, caching it */
static PyObject *buffered_type;   /* io.BufferedReader */
static PyObject *MISS;            /* returned for a load the static path must decide */
/* Set on the first load naming numpy (numpy_fn). */
static PyObject *np_classes, *np_dtype_type, *np_ndarray_type, *np_verified, *np_verify, *np_nested_key;
static PyObject *s_find_class, *s_load, *s_tell, *s_buffer_size, *s_setstate, *s_dict, *s_itemsize, *s_hasobject;
static PyObject *s_latin1, *s_latin_1, *s_underscore, *zero_tuple, *bytes_b, *orders, *one;

/* ---- the load's state ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;  /* the BUILD function */
    PyObject *occ, *builds;     /* the plan's tuples of ints */
    Py_ssize_t next_occ, next_build;
    int py2, closed;
    long long cap;              /* limits.max_array_bytes (-1: none) */
    PyObject *returned;         /* list: what find_class returned (globals, for identity tests) */
    PyObject *encoded;          /* dict id -> what _codecs.encode returned in this load */
    /* the numpy guard (NULL until an occurrence names numpy): dicts keyed by id */
    PyObject *pending_dtypes;   /* id -> (dtype, args): made by dtype(), waiting for their BUILD */
    PyObject *sealed;           /* id -> dtype: BUILD done and checked */
    PyObject *keys;             /* id of a sealed dtype -> the key its state was verified under */
    PyObject *pending_arrays;   /* id -> array: made by _reconstruct, waiting for their BUILD */
} PlanState;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PlanState *state;
    PyObject *func;
    int rule;
    long arg;
} PlanCall;

static PyTypeObject PlanStateType, PlanCallType;

static int
needs_scan(void)
{
    PyErr_SetNone(NeedsScan);
    return -1;
}

static PyObject *
needs_scan_null(void)
{
    PyErr_SetNone(NeedsScan);
    return NULL;
}

static int
in_list(PyObject *list, PyObject *obj)
{
    Py_ssize_t i, n = PyList_GET_SIZE(list);
    for (i = 0; i < n; i++)
        if (PyList_GET_ITEM(list, i) == obj)
            return 1;
    return 0;
}

/* d[id(obj)] is obj */
static int
id_maps_to(PyObject *d, PyObject *obj)
{
    PyObject *key = PyLong_FromVoidPtr(obj), *v;
    if (key == NULL)
        return -1;
    v = PyDict_GetItemWithError(d, key);
    Py_DECREF(key);
    if (v == NULL && PyErr_Occurred())
        return -1;
    return v == obj;
}

static int
id_set(PyObject *d, PyObject *obj, PyObject *value)
{
    PyObject *key = PyLong_FromVoidPtr(obj);
    int r;
    if (key == NULL)
        return -1;
    r = PyDict_SetItem(d, key, value);
    Py_DECREF(key);
    return r;
}

/* d.pop(id(obj), None), a new reference or NULL (absent, or an error set) */
static PyObject *
id_pop(PyObject *d, PyObject *obj)
{
    PyObject *key = PyLong_FromVoidPtr(obj), *v;
    if (key == NULL)
        return NULL;
    v = PyDict_GetItemWithError(d, key);
    if (v != NULL) {
        Py_INCREF(v);
        if (PyDict_DelItem(d, key) < 0) {
            Py_CLEAR(v);
        }
    }
    Py_DECREF(key);
    return v;
}

static int
encoded(PlanState *st, PyObject *value)
{
    return id_maps_to(st->encoded, value);
}

/* cls is a class this load resolved, inert and without argument rules (PlannedLoad.inert_class) */
static int
inert_class(PlanState *st, PyObject *cls)
{
    PyObject *r;
    int ok;
    if (!PyType_Check(cls) || !in_list(st->returned, cls))
        return 0;
    r = PyObject_CallOneArg(inert_class_fn, cls);
    if (r == NULL)
        return -1;
    ok = PyObject_IsTrue(r);
    Py_DECREF(r);
    return ok;
}

static int
guard_start(PlanState *st)
{
    if (np_classes == NULL) {
        PyObject *t = PyObject_CallNoArgs(numpy_fn);
        if (t == NULL)
            return -1;
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 6) {
            Py_DECREF(t);
            PyErr_SetString(PyExc_SystemError, "planned load: bad numpy configuration");
            return -1;
        }
        np_classes = Py_NewRef(PyTuple_GET_ITEM(t, 0));
        np_dtype_type = Py_NewRef(PyTuple_GET_ITEM(t, 1));
        np_ndarray_type = Py_NewRef(PyTuple_GET_ITEM(t, 2));
        np_verified = Py_NewRef(PyTuple_GET_ITEM(t, 3));
        np_verify = Py_NewRef(PyTuple_GET_ITEM(t, 4));
        np_nested_key = Py_NewRef(PyTuple_GET_ITEM(t, 5));
        Py_DECREF(t);
    }
    if ((st->pending_dtypes = PyDict_New()) == NULL || (st->sealed = PyDict_New()) == NULL
        || (st->keys = PyDict_New()) == NULL || (st->pending_arrays = PyDict_New()) == NULL)
        return -1;
    return 0;
}

/* ---- numpy: the guard's checks (NumpyGuard) ---------------------------------------------------- */

static int
sealed(PlanState *st, PyObject *dtype)
{
    int r = id_maps_to(st->sealed, dtype);
    return r < 0 ? -1 : (r ? 0 : needs_scan());
}

/* dtype.itemsize and dtype.hasobject */
static int
dtype_info(PyObject *dtype, Py_ssize_t *itemsize, int *hasobject)
{
    PyObject *v = PyObject_GetAttr(dtype, s_itemsize);
    if (v == NULL)
        return -1;
    *itemsize = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    if (*itemsize == -1 && PyErr_Occurred())
        return -1;
    v = PyObject_GetAttr(dtype, s_hasobject);
    if (v == NULL)
        return -1;
    *hasobject = PyObject_IsTrue(v);
    Py_DECREF(v);
    return *hasobject < 0 ? -1 : 0;
}

/* The item count of shape (NumpyGuard._nbytes): a tuple of non-negative ints whose bytes stay within
 * the cap. Anything Python would compute past 64 bits is refused here too. */
static int
nbytes_items(PlanState *st, PyObject *shape, Py_ssize_t itemsize, long long *items_out)
{
    Py_ssize_t i, n;
    long long items = 1, nbytes;
    if (!PyTuple_CheckExact(shape))
        return needs_scan();
    n = PyTuple_GET_SIZE(shape);
    for (i = 0; i < n; i++) {
        PyObject *d = PyTuple_GET_ITEM(shape, i);
        long long v;
        int overflow;
        if (!PyLong_CheckExact(d))
            return needs_scan();
        v = PyLong_AsLongLongAndOverflow(d, &overflow);
        if (overflow || v < 0 || (v == -1 && PyErr_Occurred()))
            return PyErr_Occurred() ? -1 : needs_scan();
        if (__builtin_mul_overflow(items, v, &items))
            return needs_scan();
    }
    if (__builtin_mul_overflow(items, (long long)itemsize, &nbytes))
        return needs_scan();
    if (st->cap >= 0 && nbytes > st->cap)
        return needs_scan();
    *items_out = items;
    return 0;
}

static Py_ssize_t
buffer_size(PyObject *obj)
{
    Py_buffer view;
    Py_ssize_t size;
    if (PyObject_GetBuffer(obj, &view, PyBUF_FULL_RO) < 0) {
        if (PyErr_ExceptionMatches(PyExc_TypeError))
            PyErr_SetNone(NeedsScan);
        return -1;
    }
    size = view.len;
    PyBuffer_Release(&view);
    return size;
}

static PyObject *
np_dtype_call(PlanState *st, PyObject *func, PyObject *const *args, Py_ssize_t n)
{
    PyObject *dtype, *targs, *entry;
    if (!(n == 3 && PyUnicode_CheckExact(args[0]) && PyBool_Check(args[1]) && args[2] == Py_True))
        return needs_scan_null();
    dtype = PyObject_Vectorcall(func, args, n, NULL);
    if (dtype == NULL)
        return NULL;
    targs = PyTuple_Pack(3, args[0], args[1], args[2]);
    entry = targs == NULL ? NULL : PyTuple_Pack(2, dtype, targs);
    Py_XDECREF(targs);
    if (entry == NULL || id_set(st->pending_dtypes, dtype, entry) < 0) {
        Py_XDECREF(entry);
        Py_DECREF(dtype);
        return NULL;
    }
    Py_DECREF(entry);
    return dtype;
}

static PyObject *
np_reconstruct_call(PlanState *st, PyObject *func, PyObject *const *args, Py_ssize_t n)
{
    PyObject *array, *first;
    int eq;
    if (n != 3 || args[0] != np_ndarray_type)
        return needs_scan_null();
    eq = PyObject_RichCompareBool(args[1], zero_tuple, Py_EQ);
    if (eq <= 0)
        return eq < 0 ? NULL : needs_scan_null();
    first = PySequence_GetItem(args[1], 0);
    if (first == NULL)
        return NULL;
    eq = PyLong_CheckExact(first);
    Py_DECREF(first);
    if (!eq)
        return needs_scan_null();
    eq = PyObject_RichCompareBool(args[2], bytes_b, Py_EQ);
    if (eq <= 0)
        return eq < 0 ? NULL : needs_scan_null();
    array = PyObject_Vectorcall(func, args, n, NULL);
    if (array == NULL)
        return NULL;
    if (id_set(st->pending_arrays, array, array) < 0) {
        Py_DECREF(array);
        return NULL;
    }
    return array;
}

static PyObject *
np_scalar_call(PlanState *st, PyObject *func, PyObject *const *args, Py_ssize_t n)
{
    Py_ssize_t itemsize;
    int hasobject;
    if (n != 2 || sealed(st, args[0]) < 0 || dtype_info(args[0], &itemsize, &hasobject) < 0)
        return n != 2 ? needs_scan_null() : NULL;
    if (hasobject || !PyBytes_CheckExact(args[1]) || PyBytes_GET_SIZE(args[1]) != itemsize)
        return needs_scan_null();
    return PyObject_Vectorcall(func, args, n, NULL);
}

static PyObject *
np_frombuffer_call(PlanState *st, PyObject *func, PyObject *const *args, Py_ssize_t n)
{
    Py_ssize_t itemsize, size;
    long long items;
    int hasobject, order;
    if (n != 4)
        return needs_scan_null();
    order = PySequence_Contains(orders, args[3]);
    if (order <= 0)
        return order < 0 ? NULL : needs_scan_null();
    if (sealed(st, args[1]) < 0 || dtype_info(args[1], &itemsize, &hasobject) < 0)
        return NULL;
    if (hasobject)
        return needs_scan_null();
    if (nbytes_items(st, args[2], itemsize, &items) < 0)
        return NULL;
    size = buffer_size(args[0]);
    if (size < 0)
        return NULL;
    if ((long long)size != items * (long long)itemsize)
        return needs_scan_null();
    return PyObject_Vectorcall(func, args, n, NULL);
}

/* PlannedLoad.build's numpy half: dtypes and arrays as NumpyGuard._build_dtype/_build_array. */
static int
datetime_meta(PyObject *meta)
{
    PyObject *inner;
    if (!PyTuple_CheckExact(meta) || PyTuple_GET_SIZE(meta) != 2 || PyTuple_GET_ITEM(meta, 0) != Py_None)
        return 0;
    inner = PyTuple_GET_ITEM(meta, 1);
    return PyTuple_CheckExact(inner) && PyTuple_GET_SIZE(inner) == 4 && PyBytes_CheckExact(PyTuple_GET_ITEM(inner, 0))
           && PyLong_CheckExact(PyTuple_GET_ITEM(inner, 1)) && PyLong_CheckExact(PyTuple_GET_ITEM(inner, 2))
           && PyLong_CheckExact(PyTuple_GET_ITEM(inner, 3));
}

static int
call_setstate(PyObject *inst, PyObject *state)
{
    PyObject *r = PyObject_CallMethodOneArg(inst, s_setstate, state);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int
build_dtype(PlanState *st, PyObject *dtype, PyObject *state)
{
    PyObject *entry = id_pop(st->pending_dtypes, dtype), *args, *key = NULL;
    Py_ssize_t n;
    int known;
    if (entry == NULL)
        return PyErr_Occurred() ? -1 : needs_scan();
    if (PyTuple_GET_ITEM(entry, 0) != dtype) {
        Py_DECREF(entry);
        return needs_scan();
    }
    args = PyTuple_GET_ITEM(entry, 1);
    n = PyTuple_GET_SIZE(state);  /* state is an exact tuple (checked by the caller) */
    if (n != 8 && n != 9) {
        Py_DECREF(entry);
        return needs_scan();
    }
#define S(i) PyTuple_GET_ITEM(state, i)
    if (S(2) == Py_None && S(3) == Py_None && S(4) == Py_None && PyLong_CheckExact(S(0))
        && PyUnicode_CheckExact(S(1)) && PyLong_CheckExact(S(5)) && PyLong_CheckExact(S(6))
        && PyLong_CheckExact(S(7)) && (n == 8 || datetime_meta(S(8)))) {
        /* a plain dtype in exactly the types numpy writes: its key is (args, state) */
        key = PyTuple_Pack(2, args, state);
        if (key == NULL)
            goto error;
        known = PyDict_Contains(np_verified, key);
    }
    else {
        key = PyObject_CallFunctionObjArgs(np_nested_key, st->sealed, st->keys, args, state, NULL);
        if (key == NULL)
            goto error;
        known = key == Py_None ? 0 : PyDict_Contains(np_verified, key);
    }
#undef S
    if (known < 0)
        goto error;
    if (!known) {
        PyObject *r = PyObject_CallFunctionObjArgs(np_verify, args, state, key, NULL);
        if (r == NULL)
            goto error;
        Py_DECREF(r);
    }
    if (call_setstate(dtype, state) < 0 || id_set(st->sealed, dtype, dtype) < 0 || id_set(st->keys, dtype, key) < 0)
        goto error;
    Py_DECREF(key);
    Py_DECREF(entry);
    return 0;
error:
    Py_XDECREF(key);
    Py_DECREF(entry);
    return -1;
}

static int
build_array(PlanState *st, PyObject *array, PyObject *state)
{
    PyObject *pending = id_pop(st->pending_arrays, array), *shape, *dtype, *data;
    Py_ssize_t itemsize;
    long long items;
    int hasobject, eq;
    if (pending == NULL)
        return PyErr_Occurred() ? -1 : needs_scan();
    Py_DECREF(pending);
    if (pending != array || PyTuple_GET_SIZE(state) != 5 || !PyBool_Check(PyTuple_GET_ITEM(state, 3)))
        return needs_scan();
    eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(state, 0), one, Py_EQ);
    if (eq <= 0)
        return eq < 0 ? -1 : needs_scan();
    shape = PyTuple_GET_ITEM(state, 1);
    dtype = PyTuple_GET_ITEM(state, 2);
    data = PyTuple_GET_ITEM(state, 4);
    if (sealed(st, dtype) < 0 || dtype_info(dtype, &itemsize, &hasobject) < 0)
        return -1;
    if (nbytes_items(st, shape, hasobject && itemsize < 8 ? 8 : itemsize, &items) < 0)
        return -1;
    if (hasobject) {
        if (!PyList_CheckExact(data) || (long long)PyList_GET_SIZE(data) != items)
            return needs_scan();
    }
    else {
        Py_ssize_t size = buffer_size(data);
        if (size < 0)
            return -1;
        if ((long long)size != items * (long long)itemsize)
            return needs_scan();
    }
    return call_setstate(array, state);
}

/* ---- BUILD elsewhere: where the C unpickler and pickle.py do the same (_build_as_both) -------- */

static int
build_as_both(PyObject *inst, PyObject *state)
{
    PyObject *setstate = PyObject_GetAttr(inst, s_setstate), *slotstate = NULL, *k, *v;
    Py_ssize_t i;
    if (setstate != NULL) {
        PyObject *r = PyObject_CallOneArg(setstate, state);
        Py_DECREF(setstate);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_AttributeError))
        return -1;
    PyErr_Clear();
    if (PyTuple_Check(state) && PyTuple_GET_SIZE(state) == 2) {
        slotstate = PyTuple_GET_ITEM(state, 1);
        state = PyTuple_GET_ITEM(state, 0);
    }
    if (state != Py_None) {
        PyObject *inst_dict;
        if (!PyDict_CheckExact(state))
            return needs_scan();
        if (PyDict_GET_SIZE(state) == 0) {
            int has = PyObject_HasAttr(inst, s_dict);
            if (!has)
                return needs_scan();
        }
        inst_dict = PyObject_GetAttr(inst, s_dict);
        if (inst_dict == NULL)
            return -1;
        i = 0;
        while (PyDict_Next(state, &i, &k, &v)) {
            int r;
            Py_INCREF(k);
            Py_INCREF(v);
            if (PyUnicode_CheckExact(k))
                PyUnicode_InternInPlace(&k);
            r = PyObject_SetItem(inst_dict, k, v);
            Py_DECREF(k);
            Py_DECREF(v);
            if (r < 0) {
                Py_DECREF(inst_dict);
                return -1;
            }
        }
        Py_DECREF(inst_dict);
    }
    if (slotstate != NULL && slotstate != Py_None) {
        if (!PyDict_CheckExact(slotstate))
            return needs_scan();
        i = 0;
        while (PyDict_Next(slotstate, &i, &k, &v)) {
            int r;
            Py_INCREF(k);
            Py_INCREF(v);
            r = PyObject_SetAttr(inst, k, v);
            Py_DECREF(k);
            Py_DECREF(v);
            if (r < 0)
                return -1;
        }
    }
    return 0;
}

static uint64_t
bits_at(PyObject *tuple, Py_ssize_t i)
{
    return PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(tuple, i));
}

/* The BUILD function: PlanState(inst, state) -> inst (PlannedLoad.build). */
static PyObject *
state_build(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PlanState *st = (PlanState *)self;
    Py_ssize_t k = st->next_build;
    PyObject *inst, *state;
    uint64_t bits;
    int r;
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL || st->closed || k >= PyTuple_GET_SIZE(st->builds))
        return needs_scan_null();
    st->next_build = k + 1;
    bits = bits_at(st->builds, k);
    inst = args[0];
    state = args[1];
    if (st->sealed != NULL) {  /* the guard runs: this load named numpy */
        int is_np = PyObject_IsInstance(inst, np_classes);
        if (is_np < 0)
            return NULL;
        if (is_np) {
            if ((bits & B_IS) || !PyTuple_CheckExact(state))
                return needs_scan_null();
            if ((r = PyObject_IsInstance(inst, np_dtype_type)) != 0) {
                if (r < 0 || (bits & P_HAS(0)))
                    return r < 0 ? NULL : needs_scan_null();
                r = build_dtype(st, inst, state);
            }
            else if ((r = PyObject_IsInstance(inst, np_ndarray_type)) != 0) {
                if (r < 0 || (bits & ARRAY_LITERALS))
                    return r < 0 ? NULL : needs_scan_null();
                if ((bits & P_HAS(4)) && PyTuple_GET_SIZE(state) == 5) {
                    PyObject *data = PyTuple_GET_ITEM(state, 4);
                    if (bits & P_IS(4)) {
                        int e = encoded(st, data);
                        if (e <= 0)
                            return e < 0 ? NULL : needs_scan_null();
                    }
                    else if (!PyList_CheckExact(data))
                        return needs_scan_null();
                }
                r = build_array(st, inst, state);
            }
            else
                return needs_scan_null();  /* BUILD on a numpy scalar: refused */
            return r < 0 ? NULL : Py_NewRef(inst);
        }
    }
    if (build_as_both(inst, state) < 0)
        return NULL;
    return Py_NewRef(inst);
}

/* ---- the checking wrappers ------------------------------------------------------------------- */

static int
is_latin1(PyObject *s)
{
    return PyUnicode_CheckExact(s)
           && (PyUnicode_Compare(s, s_latin1) == 0 || PyUnicode_Compare(s, s_latin_1) == 0);
}

static PyObject *
plancall_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PlanCall *c = (PlanCall *)self;
    PlanState *st = c->state;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    PyObject *func = c->func;
    int r;

    if (kwnames != NULL || st->closed)
        return needs_scan_null();
    switch (c->rule) {
    case R_ENCODE: {
        PyObject *out;
        if (!(n == 2 && PyUnicode_CheckExact(args[0]) && is_latin1(args[1])))
            return needs_scan_null();
        out = PyUnicode_AsLatin1String(args[0]);
        if (out == NULL || id_set(st->encoded, out, out) < 0) {
            Py_XDECREF(out);
            return NULL;
        }
        return out;
    }
    case R_BYTES: {
        PyObject *first = n ? args[0] : NULL;
        if (n && (c->arg & BYTES_FIRST_MADE)) {
            r = (c->arg & BYTES_FIRST_ENCODED) ? encoded(st, first) : 0;
            if (r <= 0)
                return r < 0 ? NULL : needs_scan_null();
        }
        if (n > 2 || (n && !PyUnicode_CheckExact(first) && !PyBytes_CheckExact(first)))
            return needs_scan_null();
        if (n == 2 && !is_latin1(args[1]))
            return needs_scan_null();
        if (n && PyUnicode_CheckExact(first) && n != 2)
            return needs_scan_null();
        break;
    }
    case R_DECIMAL:
        if (!(n == 1 && PyUnicode_CheckExact(args[0])))
            return needs_scan_null();
        break;
    case R_DEFAULTDICT:
        if (n && !(args[0] == Py_None || in_list(st->returned, args[0])))
            return needs_scan_null();
        break;
    case R_RECONSTRUCTOR:
        if (n != 3 || args[1] != (PyObject *)&PyBaseObject_Type)
            return needs_scan_null();
        r = inert_class(st, args[0]);
        if (r <= 0)
            return r < 0 ? NULL : needs_scan_null();
        break;
    case R_NEWOBJ:
        if (n == 0)
            return needs_scan_null();
        r = inert_class(st, args[0]);
        if (r <= 0)
            return r < 0 ? NULL : needs_scan_null();
        break;
    case R_NP_DTYPE:
    case R_NP_RECONSTRUCT:
    case R_NP_SCALAR:
    case R_NP_FROMBUFFER:
        if (st->sealed == NULL)  /* no guard: the decision did not name numpy */
            return needs_scan_null();
        if (c->arg >= 0 && n > c->arg) {  /* a position that may hold what _codecs.encode returned */
            r = encoded(st, args[c->arg]);
            if (r <= 0)
                return r < 0 ? NULL : needs_scan_null();
        }
        if (c->rule == R_NP_DTYPE)
            return np_dtype_call(st, func, args, n);
        if (c->rule == R_NP_RECONSTRUCT)
            return np_reconstruct_call(st, func, args, n);
        if (c->rule == R_NP_SCALAR)
            return np_scalar_call(st, func, args, n);
        return np_frombuffer_call(st, func, args, n);
    default:
        return needs_scan_null();
    }
    return PyObject_Vectorcall(func, args, n, NULL);
}

static int
plancall_traverse(PlanCall *c, visitproc visit, void *arg)
{
    Py_VISIT(c->state);
    Py_VISIT(c->func);
    return 0;
}

static int
plancall_clear(PlanCall *c)
{
    Py_CLEAR(c->state);
    Py_CLEAR(c->func);
    return 0;
}

static void
plancall_dealloc(PlanCall *c)
{
    PyObject_GC_UnTrack(c);
    plancall_clear(c);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyTypeObject PlanCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "anypickle.safe._opwalk.PlanCall",
    .tp_basicsize = sizeof(PlanCall),
    .tp_dealloc = (destructor)plancall_dealloc,
    .tp_vectorcall_offset = offsetof(PlanCall, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A checking wrapper of the planned load: calls a global after its argument rule.",
    .tp_traverse = (traverseproc)plancall_traverse,
    .tp_clear = (inquiry)plancall_clear,
};

/* ---- find_class ------------------------------------------------------------------------------ */

static PyObject *
state_find_class(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PlanState *st = (PlanState *)self;
    Py_ssize_t k = st->next_occ;
    PyObject *bits_obj, *key, *decision, *obj;
    uint64_t bits;
    long kind, rule, arg;
    int numpy;

    if (nargs != 2 || st->closed || k >= PyTuple_GET_SIZE(st->occ))
        return needs_scan_null();
    st->next_occ = k + 1;
    bits_obj = PyTuple_GET_ITEM(st->occ, k);
    bits = PyLong_AsUnsignedLongLong(bits_obj);
    if (bits == OCC_BUILDER) {
        if (!PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1]) || PyUnicode_Compare(args[0], s_underscore) != 0
            || PyUnicode_Compare(args[1], s_underscore) != 0)
            return PyErr_Occurred() ? NULL : needs_scan_null();
        return Py_NewRef(self);
    }
    key = PyTuple_Pack(4, args[0], args[1], st->py2 ? Py_True : Py_False, bits_obj);
    if (key == NULL)
        return NULL;
    decision = PyDict_GetItemWithError(decisions, key);
    if (decision != NULL)
        Py_INCREF(decision);
    else if (!PyErr_Occurred())
        decision = PyObject_Vectorcall(decide, &PyTuple_GET_ITEM(key, 0), 4, NULL);
    Py_DECREF(key);
    if (decision == NULL)
        return NULL;
    if (!PyTuple_CheckExact(decision) || PyTuple_GET_SIZE(decision) != 5) {
        Py_DECREF(decision);
        PyErr_SetString(PyExc_SystemError, "planned load: a decision must be a 5-tuple");
        return NULL;
    }
    kind = PyLong_AsLong(PyTuple_GET_ITEM(decision, 0));
    numpy = PyObject_IsTrue(PyTuple_GET_ITEM(decision, 2));
    rule = PyLong_AsLong(PyTuple_GET_ITEM(decision, 3));
    arg = PyLong_AsLong(PyTuple_GET_ITEM(decision, 4));
    if (PyErr_Occurred() || numpy < 0) {
        Py_DECREF(decision);
        return NULL;
    }
    if (numpy && st->sealed == NULL && guard_start(st) < 0) {
        Py_DECREF(decision);
        return NULL;
    }
    if (kind == K_REAL) {
        obj = Py_NewRef(PyTuple_GET_ITEM(decision, 1));
    }
    else if (kind == K_WRAP && rule > 0 && rule < R_LAST) {
        PlanCall *c = PyObject_GC_New(PlanCall, &PlanCallType);
        if (c == NULL) {
            Py_DECREF(decision);
            return NULL;
        }
        c->vectorcall = plancall_vectorcall;
        c->state = (PlanState *)Py_NewRef(self);
        c->func = Py_NewRef(PyTuple_GET_ITEM(decision, 1));
        c->rule = (int)rule;
        c->arg = arg;
        PyObject_GC_Track(c);
        obj = (PyObject *)c;
    }
    else {
        Py_DECREF(decision);
        return needs_scan_null();
    }
    Py_DECREF(decision);
    if (PyList_Append(st->returned, obj) < 0) {
        Py_DECREF(obj);
        return NULL;
    }
    return obj;
}

static PyMethodDef find_class_def = {"find_class", (PyCFunction)(void (*)(void))state_find_class, METH_FASTCALL, NULL};

static void
state_close(PlanState *st)
{
    st->closed = 1;
    Py_CLEAR(st->returned);
    Py_CLEAR(st->encoded);
    Py_CLEAR(st->pending_dtypes);
    Py_CLEAR(st->sealed);
    Py_CLEAR(st->keys);
    Py_CLEAR(st->pending_arrays);
}

static int
state_traverse(PlanState *st, visitproc visit, void *arg)
{
    Py_VISIT(st->occ);
    Py_VISIT(st->builds);
    Py_VISIT(st->returned);
    Py_VISIT(st->encoded);
    Py_VISIT(st->pending_dtypes);
    Py_VISIT(st->sealed);
    Py_VISIT(st->keys);
    Py_VISIT(st->pending_arrays);
    return 0;
}

static int
state_clear(PlanState *st)
{
    state_close(st);
    Py_CLEAR(st->occ);
    Py_CLEAR(st->builds);
    return 0;
}

static void
state_dealloc(PlanState *st)
{
    PyObject_GC_UnTrack(st);
    state_clear(st);
    Py_TYPE(st)->tp_free((PyObject *)st);
}

static PyTypeObject PlanStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "anypickle.safe._opwalk.PlanState",
    .tp_basicsize = sizeof(PlanState),
    .tp_dealloc = (destructor)state_dealloc,
    .tp_vectorcall_offset = offsetof(PlanState, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "One planned load's state; calling it is the BUILD of the rewritten stream.",
    .tp_traverse = (traverseproc)state_traverse,
    .tp_clear = (inquiry)state_clear,
};

/* ---- planned_load / configure ------------------------------------------------------------------ */

PyDoc_STRVAR(planned_load_doc,
"planned_load(plan, py2_names, max_array_bytes, /)\n--\n\n"
"Load a plan's rewritten stream (safe_plan's (occurrences, builds, rewritten)) with the C\n"
"unpickler and the checks of anypickle.safe._planned; MISS when the static path must decide.");

PyObject *
planned_load(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PlanState *st;
    PyObject *plan, *rewritten, *file = NULL, *unpickler = NULL, *fc = NULL, *obj = NULL, *pos = NULL;
    long long cap;
    int py2, ok;

    if (nargs != 3 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) != 3) {
        PyErr_SetString(PyExc_TypeError, "planned_load(plan, py2_names, max_array_bytes)");
        return NULL;
    }
    if (unpickler_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "planned_load: configure() was not called");
        return NULL;
    }
    plan = args[0];
    rewritten = PyTuple_GET_ITEM(plan, 2);
    py2 = PyObject_IsTrue(args[1]);
    cap = PyLong_AsLongLong(args[2]);
    if (py2 < 0 || (cap == -1 && PyErr_Occurred()))
        return NULL;
    if (!PyTuple_CheckExact(PyTuple_GET_ITEM(plan, 0)) || !PyTuple_CheckExact(PyTuple_GET_ITEM(plan, 1))
        || !PyBytes_CheckExact(rewritten)) {
        PyErr_SetString(PyExc_TypeError, "planned_load: not a plan");
        return NULL;
    }
    st = PyObject_GC_New(PlanState, &PlanStateType);
    if (st == NULL)
        return NULL;
    st->vectorcall = state_build;
    st->occ = Py_NewRef(PyTuple_GET_ITEM(plan, 0));
    st->builds = Py_NewRef(PyTuple_GET_ITEM(plan, 1));
    st->next_occ = st->next_build = 0;
    st->py2 = py2;
    st->closed = 0;
    st->cap = cap;
    st->returned = PyList_New(0);
    st->encoded = PyDict_New();
    st->pending_dtypes = st->sealed = st->keys = st->pending_arrays = NULL;
    PyObject_GC_Track(st);
    if (st->returned == NULL || st->encoded == NULL)
        goto done;
    /* A new unpickler each time: one reused would number MEMOIZE entries on from its last load. */
    file = PyObject_CallOneArg(bytesio_type, rewritten);
    if (file == NULL)
        goto done;
    unpickler = PyObject_CallOneArg(unpickler_type, file);
    if (unpickler == NULL)
        goto done;
    fc = PyCFunction_New(&find_class_def, (PyObject *)st);
    if (fc == NULL || PyObject_SetAttr(unpickler, s_find_class, fc) < 0)
        goto done;
    obj = PyObject_CallMethodNoArgs(unpickler, s_load);
    if (obj == NULL)
        goto done;
    pos = PyObject_CallMethodNoArgs(file, s_tell);
    if (pos == NULL)
        goto done;
    ok = PyLong_AsSsize_t(pos) == PyBytes_GET_SIZE(rewritten) && st->next_occ == PyTuple_GET_SIZE(st->occ)
         && st->next_build == PyTuple_GET_SIZE(st->builds);
    if (!ok) {  /* the walk and the unpickler disagree: the static pass decides */
        PyErr_Clear();
        Py_SETREF(obj, Py_NewRef(MISS));
    }
done:
    state_close(st);
    Py_XDECREF(pos);
    Py_XDECREF(fc);
    Py_XDECREF(unpickler);
    Py_XDECREF(file);
    Py_DECREF(st);
    if (obj == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
        /* NeedsScan, a refusal, any error: the static path decides, and names what is wrong */
        PyErr_Clear();
        obj = Py_NewRef(MISS);
    }
    return obj;
}

/* ---- the inert-only load ----------------------------------------------------------------------
 *
 * What anypickle.safe._loads._load(data, inert_only=True) does, without its Python frames: the C
 * unpickler resolves only globals that are harmless to call with anything (INERT in the allowlist),
 * through inert_decide's cached answers; any other global, a persistent id or bytes after STOP raise
 * NeedsScan. */

static PyObject *
inert_find_class(PyObject *py2, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *key, *obj;
    if (nargs != 2)
        return needs_scan_null();
    key = PyTuple_Pack(3, args[0], args[1], py2);
    if (key == NULL)
        return NULL;
    obj = PyDict_GetItemWithError(inert_decisions, key);
    if (obj != NULL)
        Py_INCREF(obj);
    else if (!PyErr_Occurred())
        obj = PyObject_Vectorcall(inert_decide, &PyTuple_GET_ITEM(key, 0), 3, NULL);
    Py_DECREF(key);
    if (obj == Py_None) {
        Py_DECREF(obj);
        return needs_scan_null();
    }
    return obj;
}

static PyMethodDef inert_find_class_def = {"find_class", (PyCFunction)(void (*)(void))inert_find_class,
                                           METH_FASTCALL, NULL};

/* The inert-only load of a sound stream (memo_check passed): the object, or NULL with NeedsScan or
 * the load's own error set. */
PyObject *
inert_load(PyObject *data, int py2, int proto)
{
    PyObject *file = NULL, *reader = NULL, *unpickler = NULL, *fc = NULL, *obj = NULL, *pos = NULL;
    if (unpickler_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "inert_load: configure() was not called");
        return NULL;
    }
    file = PyObject_CallOneArg(bytesio_type, data);
    if (file == NULL)
        return NULL;
    if (proto < 4) {
        /* Protocols 0-3 have no FRAMEs: the C unpickler reads them opcode by opcode through read()
         * unless the file has peek(), which BufferedReader offers (3x faster on 100k small ints). */
        PyObject *size = PyLong_FromLong(1L << 16), *call[2] = {file, size};
        if (size == NULL)
            goto done;
        reader = PyObject_Vectorcall(buffered_type, call, 2, NULL);
        Py_DECREF(size);
        if (reader == NULL)
            goto done;
    }
    else
        reader = Py_NewRef(file);
    unpickler = PyObject_CallOneArg(unpickler_type, reader);
    if (unpickler == NULL)
        goto done;
    fc = PyCFunction_New(&inert_find_class_def, py2 ? Py_True : Py_False);
    if (fc == NULL || PyObject_SetAttr(unpickler, s_find_class, fc) < 0)
        goto done;
    obj = PyObject_CallMethodNoArgs(unpickler, s_load);
    if (obj == NULL)
        goto done;
    pos = PyObject_CallMethodNoArgs(reader, s_tell);
    if (pos == NULL || PyLong_AsSsize_t(pos) != PyBytes_GET_SIZE(data)) {
        Py_CLEAR(obj);  /* bytes after STOP: the static pass names them */
        if (!PyErr_Occurred())
            PyErr_SetNone(NeedsScan);
    }
done:
    Py_XDECREF(pos);
    Py_XDECREF(fc);
    Py_XDECREF(unpickler);
    Py_XDECREF(reader);
    Py_XDECREF(file);
    return obj;
}

/* NeedsScan is the pending exception */
int
needs_scan_pending(void)
{
    return NeedsScan != NULL && PyErr_ExceptionMatches(NeedsScan);
}

PyDoc_STRVAR(configure_doc,
"configure(unpickler_type, bytesio_type, decisions, decide, needs_scan, inert_class, numpy,\n"
"          inert_decisions, inert_decide, buffered_type, /)\n--\n\n"
"Set what planned_load uses (anypickle.safe._planned calls it once).");

PyObject *
configure_planned(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10 || !PyDict_CheckExact(args[2]) || !PyDict_CheckExact(args[7])) {
        PyErr_SetString(PyExc_TypeError, "configure(unpickler_type, bytesio_type, decisions, decide, "
                                         "needs_scan, inert_class, numpy, inert_decisions, inert_decide, "
                                         "buffered_type)");
        return NULL;
    }
    Py_XSETREF(unpickler_type, Py_NewRef(args[0]));
    Py_XSETREF(bytesio_type, Py_NewRef(args[1]));
    Py_XSETREF(decisions, Py_NewRef(args[2]));
    Py_XSETREF(decide, Py_NewRef(args[3]));
    Py_XSETREF(NeedsScan, Py_NewRef(args[4]));
    Py_XSETREF(inert_class_fn, Py_NewRef(args[5]));
    Py_XSETREF(numpy_fn, Py_NewRef(args[6]));
    Py_XSETREF(inert_decisions, Py_NewRef(args[7]));
    Py_XSETREF(inert_decide, Py_NewRef(args[8]));
    Py_XSETREF(buffered_type, Py_NewRef(args[9]));
    Py_RETURN_NONE;
}

/* Called by PyInit__opwalk: the types and strings, and MISS (shared with the fast path of loads). */
int
planload_init(PyObject *module, PyObject *miss)
{
    static PyMethodDef defs[] = {
        {"planned_load", (PyCFunction)(void (*)(void))planned_load, METH_FASTCALL, planned_load_doc},
        {"configure_planned", (PyCFunction)(void (*)(void))configure_planned, METH_FASTCALL, configure_doc},
        {NULL, NULL, 0, NULL},
    };
    MISS = miss;
    if (PyType_Ready(&PlanStateType) < 0 || PyType_Ready(&PlanCallType) < 0)
        return -1;
#define STR(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return -1
    STR(s_find_class, "find_class");
    STR(s_load, "load");
    STR(s_tell, "tell");
    STR(s_buffer_size, "buffer_size");
    STR(s_setstate, "__setstate__");
    STR(s_dict, "__dict__");
    STR(s_itemsize, "itemsize");
    STR(s_hasobject, "hasobject");
    STR(s_latin1, "latin1");
    STR(s_latin_1, "latin-1");
    STR(s_underscore, "_");
#undef STR
    if ((zero_tuple = Py_BuildValue("(i)", 0)) == NULL || (bytes_b = PyBytes_FromString("b")) == NULL
        || (orders = Py_BuildValue("(ss)", "C", "F")) == NULL || (one = PyLong_FromLong(1)) == NULL)
        return -1;
    return PyModule_AddFunctions(module, defs);
}
