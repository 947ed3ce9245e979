/* anypickle._opwalk: a bounds-checked walk over pickle opcodes that checks memo discipline, and
 * the C fast path of anypickle.loads for unsigned stdlib-pickle envelopes (load_pickle_envelope).
 *
 * Why: CPython's C unpickler sizes its memo array from the largest PUT/BINPUT/LONG_BINPUT index it
 * meets (it grows the array to 2 * index and zeroes it), so an 8-byte stream can make it allocate
 * tens of gigabytes (CPython gh-115952). memo_check() proves, before the C unpickler runs, that every
 * memo index is exactly the next free one, so the memo never holds more than one slot per opcode.
 *
 * The walk must parse the stream exactly as the C unpickler will. Two CPython facts matter:
 *  - inside a FRAME the C unpickler reads from the frame's buffer; an argument (fixed-size or a
 *    text line) that runs past the frame's end makes it DROP the frame's remaining bytes and read
 *    the argument from after the frame, so a linear walk would see other opcodes than it does. We
 *    refuse any opcode that straddles a frame's end, and a FRAME inside a frame (picklers write
 *    neither; pickle.py refuses both);
 *  - PUT's text index is parsed by PyLong_FromString, which stops at a NUL byte and accepts signs,
 *    spaces and underscores: we accept only plain ASCII digits.
 * Anything else we cannot follow (unknown opcode, truncated or negative argument, no STOP, bytes
 * after STOP) is a refusal too: the caller then runs the full static pass, which names the problem.
 *
 * Pure C over a borrowed buffer: no Python call inside the loop, every read bounds-checked.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { HIGHEST_PROTOCOL = 5 };

/* Argument kinds, indexed by opcode byte. */
enum {
    A_BAD = 0,   /* not an opcode */
    A_NONE,      /* no argument */
    A_FIX,       /* fixed-size argument of FIXSIZE[op] bytes */
    A_CNT1,      /* 1-byte unsigned count, then that many bytes */
    A_CNT4U,     /* 4-byte unsigned little-endian count */
    A_CNT4S,     /* 4-byte signed count (negative is malformed) */
    A_CNT8,      /* 8-byte unsigned count */
    A_LINE,      /* one newline-terminated argument */
    A_LINE2,     /* two newline-terminated arguments (GLOBAL, INST) */
    A_PUT1,      /* BINPUT */
    A_PUT4,      /* LONG_BINPUT */
    A_PUTNL,     /* PUT */
    A_MEMOIZE,
    A_FRAME,
    A_PROTO,
    A_STOP,
};

static unsigned char KIND[256];
static unsigned char FIXSIZE[256];
/* Opcodes that can import, call or build anything beyond builtin containers and scalars. */
static unsigned char ACTIVE[256];

static void
init_tables(void)
{
    static const char none_ops[] = "(.012NRabd}e]lostu)Q";
    static const unsigned char none_hi[] = {0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90,
                                            0x91, 0x92, 0x93, 0x97, 0x98};
    static const char line_ops[] = "ILFSVPg";
    size_t i;

    memset(KIND, A_BAD, sizeof KIND);
    memset(FIXSIZE, 0, sizeof FIXSIZE);
    for (i = 0; none_ops[i]; i++)
        KIND[(unsigned char)none_ops[i]] = A_NONE;
    for (i = 0; i < sizeof none_hi; i++)
        KIND[none_hi[i]] = A_NONE;
    for (i = 0; line_ops[i]; i++)
        KIND[(unsigned char)line_ops[i]] = A_LINE;
    {
        static const unsigned char active[] = {
            'c', 0x93, 'i', 'o', 0x82, 0x83, 0x84, 'P', 'Q', 'R', 'b', 0x81, 0x92, 0x97, 0x98,
        };
        for (i = 0; i < (int)sizeof(active); i++)
            ACTIVE[active[i]] = 1;
    }
    KIND['.'] = A_STOP;
    KIND['c'] = KIND['i'] = A_LINE2;
    /* fixed-size arguments */
    KIND['J'] = A_FIX; FIXSIZE['J'] = 4;        /* BININT */
    KIND['K'] = A_FIX; FIXSIZE['K'] = 1;        /* BININT1 */
    KIND['M'] = A_FIX; FIXSIZE['M'] = 2;        /* BININT2 */
    KIND['G'] = A_FIX; FIXSIZE['G'] = 8;        /* BINFLOAT */
    KIND['h'] = A_FIX; FIXSIZE['h'] = 1;        /* BINGET */
    KIND['j'] = A_FIX; FIXSIZE['j'] = 4;        /* LONG_BINGET */
    KIND[0x82] = A_FIX; FIXSIZE[0x82] = 1;      /* EXT1 */
    KIND[0x83] = A_FIX; FIXSIZE[0x83] = 2;      /* EXT2 */
    KIND[0x84] = A_FIX; FIXSIZE[0x84] = 4;      /* EXT4 */
    /* counted arguments */
    KIND['U'] = A_CNT1;                         /* SHORT_BINSTRING */
    KIND['C'] = A_CNT1;                         /* SHORT_BINBYTES */
    KIND[0x8c] = A_CNT1;                        /* SHORT_BINUNICODE */
    KIND[0x8a] = A_CNT1;                        /* LONG1 */
    KIND['T'] = A_CNT4S;                        /* BINSTRING */
    KIND[0x8b] = A_CNT4S;                       /* LONG4 */
    KIND['B'] = A_CNT4U;                        /* BINBYTES */
    KIND['X'] = A_CNT4U;                        /* BINUNICODE */
    KIND[0x8d] = A_CNT8;                        /* BINUNICODE8 */
    KIND[0x8e] = A_CNT8;                        /* BINBYTES8 */
    KIND[0x96] = A_CNT8;                        /* BYTEARRAY8 */
    /* memo and framing */
    KIND['q'] = A_PUT1;
    KIND['r'] = A_PUT4;
    KIND['p'] = A_PUTNL;
    KIND[0x94] = A_MEMOIZE;
    KIND[0x95] = A_FRAME;
    KIND[0x80] = A_PROTO;
}

static uint64_t
le(const unsigned char *p, int width)
{
    uint64_t v = 0;
    int i;
    for (i = width - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* CRC-32 as zlib.crc32 computes it (reflected polynomial 0xEDB88320), for the envelope header. */
static uint32_t CRC_TABLE[256];

static void
init_crc(void)
{
    uint32_t i, c;
    int k;
    for (i = 0; i < 256; i++) {
        c = i;
        for (k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        CRC_TABLE[i] = c;
    }
}

static uint32_t
crc32(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    while (n--)
        c = CRC_TABLE[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* A refusal: (position, message). */
static PyObject *
refuse(Py_ssize_t pos, const char *format, ...)
{
    va_list vargs;
    PyObject *message, *result;

    va_start(vargs, format);
    message = PyUnicode_FromFormatV(format, vargs);
    va_end(vargs);
    if (message == NULL)
        return NULL;
    result = Py_BuildValue("(nN)", pos, message);
    return result;
}

/* None when the stream is sound, (position, message) for its first problem. With stop_at_active,
 * False as soon as an active opcode is seen (its verdict is then "not plain data" either way). */
static PyObject *
walk(const unsigned char *data, Py_ssize_t n, int *active, int stop_at_active)
{
    Py_ssize_t pos = 0;
    Py_ssize_t frame_end = -1;  /* end of the current FRAME, -1 outside frames */
    Py_ssize_t memo_count = 0;  /* memo entries made so far: the only index a PUT may use */

    for (;;) {
        Py_ssize_t at = pos, limit, avail;
        unsigned char op;
        int kind;

        if (frame_end >= 0 && pos == frame_end)
            frame_end = -1;  /* the frame was read to its end: back to reading the stream */
        limit = frame_end >= 0 ? frame_end : n;
        if (pos >= limit) {
            if (frame_end >= 0)
                return refuse(at, "stream ends inside a frame before STOP");
            return refuse(at, "stream ends before STOP (truncated)");
        }
        op = data[pos++];
        kind = KIND[op];
        *active |= ACTIVE[op];
        if (*active && stop_at_active)
            Py_RETURN_FALSE;
        avail = limit - pos;  /* argument bytes readable without leaving the frame or stream */

        switch (kind) {
        case A_NONE:
            break;
        case A_STOP:
            if (pos != n)
                return refuse(pos, "%zd bytes after STOP", n - pos);
            Py_RETURN_NONE;
        case A_FIX:
            if (avail < FIXSIZE[op])
                goto truncated;
            pos += FIXSIZE[op];
            break;
        case A_PROTO:
            if (avail < 1)
                goto truncated;
            if (data[pos] > HIGHEST_PROTOCOL)
                return refuse(at, "unsupported pickle protocol %d", (int)data[pos]);
            pos += 1;
            break;
        case A_CNT1: {
            Py_ssize_t k;
            if (avail < 1)
                goto truncated;
            k = data[pos];
            if (avail - 1 < k)
                goto truncated;
            pos += 1 + k;
            break;
        }
        case A_CNT4U:
        case A_CNT4S:
        case A_CNT8: {
            int width = kind == A_CNT8 ? 8 : 4;
            uint64_t k;
            if (avail < width)
                goto truncated;
            k = le(data + pos, width);
            if (kind == A_CNT4S && (k & 0x80000000u))
                return refuse(at, "negative byte count for opcode 0x%02x", (int)op);
            if ((uint64_t)(avail - width) < k)
                goto truncated;
            pos += width + (Py_ssize_t)k;
            break;
        }
        case A_LINE:
        case A_LINE2: {
            int lines = kind == A_LINE2 ? 2 : 1;
            while (lines--) {
                const unsigned char *nl = memchr(data + pos, '\n', (size_t)(limit - pos));
                if (nl == NULL)
                    goto truncated;
                pos = (Py_ssize_t)(nl - data) + 1;
            }
            break;
        }
        case A_MEMOIZE:
            memo_count++;
            break;
        case A_PUT1:
        case A_PUT4:
        case A_PUTNL: {
            uint64_t idx = 0;
            if (kind == A_PUTNL) {
                const unsigned char *p = data + pos;
                const unsigned char *nl = memchr(p, '\n', (size_t)avail);
                if (nl == NULL)
                    goto truncated;
                if (nl == p)
                    return refuse(at, "empty PUT index");
                for (; p < nl; p++) {
                    if (*p < '0' || *p > '9')
                        return refuse(at, "PUT index is not plain decimal digits");
                    idx = idx * 10 + (uint64_t)(*p - '0');
                    if (idx > (uint64_t)memo_count)
                        break;  /* already too large: stop before it can overflow */
                }
                pos = (Py_ssize_t)(nl - data) + 1;
            }
            else {
                int width = kind == A_PUT1 ? 1 : 4;
                if (avail < width)
                    goto truncated;
                idx = le(data + pos, width);
                pos += width;
            }
            if (idx > (uint64_t)memo_count)
                return refuse(at, "memo index %llu skips ahead of the next free index %zd "
                              "(the C unpickler would allocate a memo array that large)",
                              (unsigned long long)idx, memo_count);
            if (idx < (uint64_t)memo_count)
                return refuse(at, "memo index %llu overwritten (memo confusion)",
                              (unsigned long long)idx);
            memo_count++;
            break;
        }
        case A_FRAME: {
            uint64_t k;
            if (frame_end >= 0)
                return refuse(at, "FRAME inside a frame");
            if (avail < 8)
                goto truncated;
            k = le(data + pos, 8);
            pos += 8;
            if ((uint64_t)(n - pos) < k)
                return refuse(at, "frame of %llu bytes runs past the end of the stream",
                              (unsigned long long)k);
            frame_end = pos + (Py_ssize_t)k;
            break;
        }
        default:
            return refuse(at, "byte 0x%02x is not a pickle opcode", (int)op);
        }
        continue;
    truncated:
        if (frame_end >= 0)
            return refuse(at, "the argument of opcode 0x%02x runs past the end of its frame", (int)op);
        return refuse(at, "stream truncated inside the argument of opcode 0x%02x", (int)op);
    }
}

/* walk() over any bytes-like object; *active tells whether an importing/calling opcode was seen. */
static PyObject *
walk_buffer(PyObject *arg, int *active, int stop_at_active)
{
    Py_buffer view;
    PyObject *result;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    result = walk((const unsigned char *)view.buf, view.len, active, stop_at_active);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
memo_check(PyObject *module, PyObject *arg)
{
    int active = 0;

    return walk_buffer(arg, &active, 0);
}

static PyObject *
plain_data(PyObject *module, PyObject *arg)
{
    int active = 0;
    PyObject *result = walk_buffer(arg, &active, 1);

    if (result == NULL)
        return NULL;
    if (result != Py_None)
        active = 1;
    Py_DECREF(result);
    return PyBool_FromLong(!active);
}

/* The one header shape load_pickle_envelope takes, as anypickle._envelope writes it (the test suite
 * compares ENVELOPE_PREFIX with _envelope's): magic "APKL", format version 1, Backend.PICKLE (1),
 * no flags, reserved 0; then the payload length (8 bytes LE) and the CRC-32 of those 16 bytes. */
enum { ENVELOPE_SIZE = 20, SMALL_PAYLOAD = 4096 };
static const unsigned char ENVELOPE_PREFIX[8] = {'A', 'P', 'K', 'L', 1, 1, 0, 0};
/* The last header found valid: a task stream repeats a few payload lengths, so most calls skip the
 * CRC. Starts as the valid header of an empty payload (never all zeros, which is no header). */
static unsigned char last_header[ENVELOPE_SIZE];
static PyObject *MISS;          /* returned for every input the fast path does not take */
static PyObject *pickle_loads;  /* pickle.loads, looked up once */

/* pickle.loads(payload) when data is an unsigned stdlib-pickle envelope (and, with safe, its
 * payload is plain data); a new reference to MISS for anything else; NULL with an exception set
 * when pickle.loads raised (with safe, MISS instead: plain data ran nothing, and the caller's full
 * safe path reloads it and names the problem). */
static PyObject *
load_envelope(PyObject *data, int safe)
{
    const unsigned char *buf;
    PyObject *payload, *result;
    Py_ssize_t n;

    if (!PyBytes_CheckExact(data))
        return Py_NewRef(MISS);
    buf = (const unsigned char *)PyBytes_AS_STRING(data);
    n = PyBytes_GET_SIZE(data);
    if (n < ENVELOPE_SIZE || le(buf + 8, 8) != (uint64_t)(n - ENVELOPE_SIZE))
        return Py_NewRef(MISS);
    if (memcmp(buf, last_header, ENVELOPE_SIZE) != 0) {
        if (memcmp(buf, ENVELOPE_PREFIX, sizeof ENVELOPE_PREFIX) != 0 || le(buf + 16, 4) != crc32(buf, 16))
            return Py_NewRef(MISS);
        memcpy(last_header, buf, ENVELOPE_SIZE);
    }
    if (safe) {
        int active = 0;
        PyObject *verdict = walk(buf + ENVELOPE_SIZE, n - ENVELOPE_SIZE, &active, 1);
        if (verdict == NULL)
            return NULL;
        int sound = verdict == Py_None;
        Py_DECREF(verdict);
        if (!sound)
            return Py_NewRef(MISS);
    }
    if (n - ENVELOPE_SIZE < SMALL_PAYLOAD) {
        payload = PyBytes_FromStringAndSize((const char *)buf + ENVELOPE_SIZE, n - ENVELOPE_SIZE);
    }
    else {  /* a view, not a copy, of a large payload; it holds a reference to data */
        PyObject *view = PyMemoryView_FromObject(data);
        if (view == NULL)
            return NULL;
        payload = PySequence_GetSlice(view, ENVELOPE_SIZE, n);
        Py_DECREF(view);
    }
    if (payload == NULL)
        return NULL;
    result = PyObject_CallOneArg(pickle_loads, payload);
    Py_DECREF(payload);
    if (result == NULL && safe && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return Py_NewRef(MISS);
    }
    return result;
}

static PyObject *
load_pickle_envelope(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int safe;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "load_pickle_envelope(data, safe, /) takes 2 arguments");
        return NULL;
    }
    safe = PyObject_IsTrue(args[1]);
    if (safe < 0)
        return NULL;
    return load_envelope(args[0], safe);
}

PyDoc_STRVAR(load_pickle_envelope_doc,
"load_pickle_envelope(data, safe, /)\n--\n\n"
"The fast path of anypickle.loads. When data is bytes holding an unsigned stdlib-pickle envelope\n"
"(the 20-byte header checked, CRC included), return pickle.loads(payload); with safe true, only\n"
"when plain_data(payload) also holds. Return MISS for anything else, which the caller then\n"
"loads the long way. Errors of pickle.loads propagate, except with safe true (MISS).");

/* FastLoads: anypickle.loads itself when the extension is built. A call with one bytes argument
 * and at most the keyword safe= goes through load_envelope without entering Python (a Python
 * frame, its argument checks and this call cost more than pickle.loads's own work on a small
 * payload); every other call, and every MISS, goes to the Python loads (slow), which takes the
 * same fast path first and so behaves identically. pickle.loads's errors go to on_error, a Python
 * function that raises the anypickle error for them. Attributes live in __dict__, which
 * functools.update_wrapper fills (__wrapped__, __doc__, __name__, ...), so help() and
 * inspect.signature() show the Python loads. */
typedef struct {
    PyObject_HEAD
    PyObject *slow;
    PyObject *on_error;
    PyObject *dict;
    vectorcallfunc vectorcall;
} FastLoads;

static PyObject *
fastloads_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    FastLoads *self = (FastLoads *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    int safe = 0;

    if (nargs == 1 && PyBytes_CheckExact(args[0]) && nkw <= 1) {
        PyObject *result;
        if (nkw == 1) {
            if (!PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0))
                || PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "safe") != 0)
                goto slow;
            safe = PyObject_IsTrue(args[1]);
            if (safe < 0)
                return NULL;
        }
        result = load_envelope(args[0], safe);
        if (result == NULL) {
            PyObject *type, *value, *traceback;
            if (!PyErr_ExceptionMatches(PyExc_Exception))
                return NULL;  /* KeyboardInterrupt and the like propagate as they are */
            PyErr_Fetch(&type, &value, &traceback);
            PyErr_NormalizeException(&type, &value, &traceback);
            if (traceback != NULL)
                PyException_SetTraceback(value, traceback);
            result = PyObject_CallOneArg(self->on_error, value);  /* raises: NULL */
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
            if (result != NULL) {
                Py_DECREF(result);
                PyErr_SetString(PyExc_SystemError, "anypickle: on_error returned instead of raising");
            }
            return NULL;
        }
        if (result != MISS)
            return result;
        Py_DECREF(result);
    }
slow:
    return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
}

static PyObject *
fastloads_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *slow, *on_error;
    FastLoads *self;

    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "FastLoads() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "FastLoads", 2, 2, &slow, &on_error))
        return NULL;
    if (!PyCallable_Check(slow) || !PyCallable_Check(on_error)) {
        PyErr_SetString(PyExc_TypeError, "FastLoads(slow, on_error) takes two callables");
        return NULL;
    }
    self = (FastLoads *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->slow = Py_NewRef(slow);
    self->on_error = Py_NewRef(on_error);
    self->vectorcall = fastloads_vectorcall;
    return (PyObject *)self;
}

static int
fastloads_traverse(FastLoads *self, visitproc visit, void *arg)
{
    Py_VISIT(self->slow);
    Py_VISIT(self->on_error);
    Py_VISIT(self->dict);
    return 0;
}

static int
fastloads_clear(FastLoads *self)
{
    Py_CLEAR(self->slow);
    Py_CLEAR(self->on_error);
    Py_CLEAR(self->dict);
    return 0;
}

static void
fastloads_dealloc(FastLoads *self)
{
    PyObject_GC_UnTrack(self);
    fastloads_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
fastloads_reduce(PyObject *self, PyObject *unused)
{
    /* Pickled by reference, as functions are: pickle imports __module__ and looks up __qualname__. */
    return PyObject_GetAttrString(self, "__qualname__");
}

static PyObject *
fastloads_repr(PyObject *self)
{
    PyObject *qualname = PyObject_GetAttrString(self, "__qualname__"), *result;
    if (qualname == NULL) {
        PyErr_Clear();
        return PyUnicode_FromString("<anypickle loads with a C fast path>");
    }
    result = PyUnicode_FromFormat("<function %S with a C fast path>", qualname);
    Py_DECREF(qualname);
    return result;
}

static PyMethodDef fastloads_methods[] = {
    {"__reduce__", fastloads_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef fastloads_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FastLoadsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "anypickle._opwalk.FastLoads",
    .tp_basicsize = sizeof(FastLoads),
    .tp_dealloc = (destructor)fastloads_dealloc,
    .tp_vectorcall_offset = offsetof(FastLoads, vectorcall),
    .tp_repr = fastloads_repr,
    .tp_call = PyVectorcall_Call,
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "FastLoads(slow, on_error): loads with a C fast path for plain-data envelopes.",
    .tp_traverse = (traverseproc)fastloads_traverse,
    .tp_clear = (inquiry)fastloads_clear,
    .tp_methods = fastloads_methods,
    .tp_getset = fastloads_getset,
    .tp_dictoffset = offsetof(FastLoads, dict),
    .tp_new = fastloads_new,
};

PyDoc_STRVAR(plain_data_doc,
"plain_data(data, /)\n--\n\n"
"True when memo_check(data) passes and the stream has no opcode that imports, calls or builds\n"
"anything (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*, PERSID, BINPERSID, REDUCE, BUILD, NEWOBJ*,\n"
"out-of-band buffers): then only builtin containers and scalars can come out of it.");

PyDoc_STRVAR(memo_check_doc,
"memo_check(data, /)\n--\n\n"
"Walk a pickle stream's opcodes without executing anything. Return None when every memo index is\n"
"the next free one, no opcode straddles a frame's end and the stream ends with its first STOP;\n"
"otherwise (position, message) for the first problem.");

static PyMethodDef methods[] = {
    {"memo_check", memo_check, METH_O, memo_check_doc},
    {"plain_data", plain_data, METH_O, plain_data_doc},
    {"load_pickle_envelope", (PyCFunction)(void (*)(void))load_pickle_envelope, METH_FASTCALL,
     load_pickle_envelope_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "anypickle._opwalk",
    "Memo discipline check for pickle streams (CPython gh-115952), and the C fast path of loads.", -1, methods,
};

PyMODINIT_FUNC
PyInit__opwalk(void)
{
    PyObject *module, *pickle, *prefix;

    init_tables();
    init_crc();
    memcpy(last_header, ENVELOPE_PREFIX, sizeof ENVELOPE_PREFIX);  /* length 0, then its CRC */
    {
        uint32_t crc = crc32(last_header, 16);
        int i;
        for (i = 0; i < 4; i++)
            last_header[16 + i] = (unsigned char)(crc >> (8 * i));
    }
    pickle = PyImport_ImportModule("pickle");
    if (pickle == NULL)
        return NULL;
    pickle_loads = PyObject_GetAttrString(pickle, "loads");
    Py_DECREF(pickle);
    if (pickle_loads == NULL)
        return NULL;
    MISS = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    if (MISS == NULL)
        return NULL;
    if (PyType_Ready(&FastLoadsType) < 0)
        return NULL;
    module = PyModule_Create(&moduledef);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "FastLoads", (PyObject *)&FastLoadsType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    prefix = PyBytes_FromStringAndSize((const char *)ENVELOPE_PREFIX, sizeof ENVELOPE_PREFIX);
    if (PyModule_AddObjectRef(module, "MISS", MISS) < 0 || prefix == NULL
        || PyModule_AddObject(module, "ENVELOPE_PREFIX", prefix) < 0) {
        Py_XDECREF(prefix);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
