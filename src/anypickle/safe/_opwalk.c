/* anypickle.safe._opwalk: a bounds-checked walk over pickle opcodes that checks memo discipline, and
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

#ifndef Py_ALWAYS_INLINE  /* CPython 3.10 */
#  if defined(__GNUC__) || defined(__clang__)
#    define Py_ALWAYS_INLINE __attribute__((always_inline))
#  else
#    define Py_ALWAYS_INLINE
#  endif
#endif

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


/* ---- Resource tracking: nesting depth and copies made by constructors -------------------------
 *
 * Alongside the parse, the walk keeps an abstract stack, mark stack and memo of *records*. Record 0
 * stands for every scalar and global (no depth, no items); each container-making opcode (EMPTY_*,
 * TUPLE*, LIST, DICT, FROZENSET, REDUCE, NEWOBJ*, OBJ, INST) and each literal longer than
 * BIG_LITERAL bytes gets its own record with:
 *  - depth: nesting depth as far as seen (1 + the deepest item put into it);
 *  - count: items it holds (bytes, for a literal), which is what a constructor copying it copies;
 *  - flags: EMBEDDED once it is inside another record, USED once a call or BUILD consumed it.
 * The memo holds record numbers, so a value fetched with GET is the same record, not a stale copy.
 *
 * Depth is sound under aliasing: when a record that is already EMBEDDED gets deeper (a GET-ed list
 * appended to after it was put inside another), its ancestors' depths are stale by at most the
 * increase, so the increase is added to a stream-wide `slack`; every depth is checked as
 * depth + slack <= max_depth. (By induction: true depth <= recorded depth + slack, for every record.)
 * Pickler-written streams grow a container only before it is embedded, except around reference
 * cycles, so slack stays 0 on ordinary data.
 *
 * Copies: REDUCE/NEWOBJ/OBJ/INST/BUILD may copy their arguments' items (list(L), set(L), bytes(b),
 * deque(L), obj.__dict__.update(state)). The first call to consume a record is free (its items were
 * paid for by the input bytes that made them); each further consumption of the same record (through
 * the memo) adds its count to `copied`, checked against max_copy. That bounds the quadratic
 * amplification "build L once, call list(GET L) a million times".
 */
enum { BIG_LITERAL = 256, R_EMBEDDED = 1, R_USED = 2, R_TUPLE = 4, R_STR = 8, INLINE = 48,
       /* plan mode only (safe_plan, see "The plan" below) */
       R_GLOBAL = 16, R_CALLRES = 32, R_HASCALL = 64, R_BOX = 128 /* a container an opcode made */ };
/* Record 1 stands for every short str or bytes literal: the one kind of dict key or set element
 * whose hash is randomized per process (PYTHONHASHSEED), so no stream can make them collide. */

typedef struct {
    int64_t depth;
    int64_t count;
    int64_t poff;      /* a tuple of more than SHORT_TUPLE items: where its items start in pool */
    int32_t plen;      /* a tuple's length */
    int32_t flags;
    int32_t items[3];  /* a tuple of up to SHORT_TUPLE items keeps them here */
    int32_t occ;       /* plan mode: a global's occurrence; a call result's callee occurrence */
} Rec;
enum { SHORT_TUPLE = 3 };

typedef struct {
    int32_t *stack; Py_ssize_t sp, scap;
    Py_ssize_t *marks; Py_ssize_t nm, mcap;
    int32_t *memo; Py_ssize_t nmemo, memocap;
    Rec *rec;
    Py_ssize_t nrec, rcap;
    int32_t *pool; Py_ssize_t npool, poolcap;
    int64_t slack, copied;
    int64_t max_depth, max_copy, max_hashed, hashed;
    Py_ssize_t max_int_bytes;
    int bigint;           /* an integer literal longer than max_int_bytes was seen */
    int broken;           /* the stack went wrong: the real unpickler fails there, tracking stops */
    const char *limit;    /* the limit exceeded, or NULL */
    int64_t limit_value;  /* what it measured */
    int oom;
    /* The plan (plan mode only; see "The plan" below). */
    int plan;             /* compute it */
    int noplan;           /* the stream has a shape the plan does not describe */
    Py_ssize_t at;        /* position of the opcode being tracked */
    Py_ssize_t *starts; Py_ssize_t stcap;   /* parallel to stack: where pushing each value began */
    Py_ssize_t *markpos; Py_ssize_t mpcap;  /* parallel to marks: each MARK's position */
    uint64_t *occ; Py_ssize_t nocc, occcap; /* per global occurrence: O_* bits */
    Py_ssize_t *occpos; Py_ssize_t opcap;   /* per global occurrence: its opcode's position */
    uint64_t *builds; Py_ssize_t nbuild, bcap;  /* per BUILD: its position, start, state bits */
    Py_ssize_t *frames; Py_ssize_t nframe, fcap;
    Py_ssize_t memo_end;  /* memo entries the stream makes */
    /* First blocks inline: small streams (the common case on the fast path) allocate nothing. */
    int32_t stack0[INLINE]; Py_ssize_t marks0[INLINE]; int32_t memo0[INLINE];
    Rec rec0[INLINE]; int32_t pool0[INLINE];
    Py_ssize_t starts0[INLINE]; Py_ssize_t markpos0[INLINE]; uint64_t occ0[INLINE]; uint64_t builds0[INLINE];
    Py_ssize_t occpos0[INLINE];
    Py_ssize_t frames0[8];
} Track;

/* Grow an array that starts in inline storage (inline_buf, INLINE entries). */
static int
grow_from(void **arr, Py_ssize_t *cap, Py_ssize_t need, size_t size, void *inline_buf)
{
    Py_ssize_t ncap;
    void *p;
    if (need <= *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    if (*arr == inline_buf) {
        p = PyMem_Malloc((size_t)ncap * size);
        if (p != NULL)
            memcpy(p, inline_buf, (size_t)*cap * size);
    }
    else
        p = PyMem_Realloc(*arr, (size_t)ncap * size);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

#define grow(arr, cap, need, size) grow_from((void **)(arr), (cap), (need), (size), NULL)

/* Grown arrays are kept between walks (up to CACHE_MAX bytes each) and handed to the next walk:
 * reallocating a large stream's arrays on every call cost a third of the tracking. The GIL is held
 * for the whole walk and the walk calls no Python code, so one cache per array is enough. */
enum { CACHE_MAX = 1 << 22 };
typedef struct { void *p; Py_ssize_t cap; } Cached;
static Cached cache_stack, cache_marks, cache_memo, cache_rec, cache_pool;

static void
cache_take(Cached *c, void **arr, Py_ssize_t *cap)
{
    if (c->p != NULL && c->cap > *cap) {
        *arr = c->p;
        *cap = c->cap;
        c->p = NULL;
        c->cap = 0;
    }
}

static void
cache_give(Cached *c, void *p, Py_ssize_t cap, size_t size, void *inline_buf)
{
    if (p == inline_buf)
        return;
    if ((size_t)cap * size <= CACHE_MAX && cap > c->cap) {
        PyMem_Free(c->p);
        c->p = p;
        c->cap = cap;
    }
    else
        PyMem_Free(p);
}

static void
plan_free(Track *t)
{
    if (t->starts != t->starts0)
        PyMem_Free(t->starts);
    if (t->markpos != t->markpos0)
        PyMem_Free(t->markpos);
    if (t->occ != t->occ0)
        PyMem_Free(t->occ);
    if (t->occpos != t->occpos0)
        PyMem_Free(t->occpos);
    if (t->builds != t->builds0)
        PyMem_Free(t->builds);
    if (t->frames != t->frames0)
        PyMem_Free(t->frames);
}

static void
track_free(Track *t)
{
    if (t->plan)
        plan_free(t);
    cache_give(&cache_stack, t->stack, t->scap, sizeof(int32_t), t->stack0);
    cache_give(&cache_marks, t->marks, t->mcap, sizeof(Py_ssize_t), t->marks0);
    cache_give(&cache_memo, t->memo, t->memocap, sizeof(int32_t), t->memo0);
    cache_give(&cache_rec, t->rec, t->rcap, sizeof(Rec), t->rec0);
    cache_give(&cache_pool, t->pool, t->poolcap, sizeof(int32_t), t->pool0);
}

static Py_ALWAYS_INLINE inline int
t_push(Track *t, int32_t r)
{
    if (t->sp >= t->scap && grow_from((void **)&t->stack, &t->scap, t->sp + 1, sizeof(int32_t), t->stack0) < 0)
        return t->oom = 1, -1;
    if (t->plan) {
        if (t->sp >= t->stcap
            && grow_from((void **)&t->starts, &t->stcap, t->sp + 1, sizeof(Py_ssize_t), t->starts0) < 0)
            return t->oom = 1, -1;
        t->starts[t->sp] = t->at;
    }
    t->stack[t->sp++] = r;
    return 0;
}

static Py_ALWAYS_INLINE inline int32_t
t_new(Track *t, int64_t depth, int64_t count)
{
    if (t->nrec >= INT32_MAX)
        return t->oom = 1, -1;
    if (t->nrec >= t->rcap
        && grow_from((void **)&t->rec, &t->rcap, t->nrec + 1, sizeof(Rec), t->rec0) < 0)
        return t->oom = 1, -1;
    {
        Rec *r = &t->rec[t->nrec];
        r->depth = depth;
        r->count = count;
        r->flags = 0;
        r->plen = 0;
        r->occ = -1;
    }
    return (int32_t)t->nrec++;
}

/* ---- The plan (plan mode: safe_plan) ----------------------------------------------------------
 *
 * safe_plan() walks like memo_check and, for a stream it can describe, also returns what
 * anypickle.safe's planned load needs to run the stream in the C unpickler with checks at the calls
 * and BUILDs only:
 *  - per global occurrence (each GLOBAL, STACK_GLOBAL and INST, in stream order: the order in which
 *    the C unpickler calls find_class), how the stream uses it (O_* bits), and which argument
 *    positions of its calls hold a call result or a container holding one;
 *  - per BUILD, in stream order: the same for its state;
 *  - the stream rewritten so that each BUILD is a call of a function find_class gives the loader:
 *    BUILD becomes TUPLE2 REDUCE, and a GLOBAL of that function is inserted where the pushing of
 *    the BUILD's target began (its FRAMEs are replaced by one around the whole stream).
 * A "call result" is anything REDUCE, NEWOBJ, OBJ or INST returns: a value the stream did not write
 * as a literal. Any shape outside this description (a callee that is not a global, DUP, EXT,
 * persistent ids, buffers, a BUILD on something that is not a call result, a container that gains a
 * call result after it was put somewhere else, more than 16 arguments, PROTO after the start, STOP
 * with more than the result on the stack) sets noplan: the caller then takes the path it took
 * before plans existed. Checking by position keeps the loader's checks exactly those of the static
 * pass: it refuses, say, numpy.dtype(str, bool(0), True), whose bool is a call result there.
 */
enum {
    O_CALL = 1,         /* callee of REDUCE, OBJ or INST */
    O_NEWOBJ = 2,       /* class of NEWOBJ or NEWOBJ_EX */
    O_VALUE = 4,        /* used any other way: in a container, as an argument or state, the result */
    O_MODIFIED = 8,     /* target of BUILD, APPEND(S), SETITEM(S) or ADDITEMS */
    O_RES_BUILT = 16,   /* something it returned is a BUILD target */
    O_RES_MUTATED = 32, /* something it returned is APPEND(S)/SETITEM(S)/ADDITEMS'ed into */
    O_RES_FED = 64,     /* something it returned is an argument of a call (or inside a tuple one) */
    P_IS_SHIFT = 8,     /* bits 8-23: argument positions (0-15) holding a call result */
    P_HAS_SHIFT = 24,   /* bits 24-39: positions holding a call result or a container with one */
    B_IS = 1,           /* a BUILD's state is a call result */
    B_HAS = 2,          /* a BUILD's state is or holds a call result */
    MAX_ARGS = 16,
};
#define OCC_BUILDER ((uint64_t)1 << 62)  /* an inserted GLOBAL of the BUILD function */

/* Record r used as a value: when it is a global, its occurrence gets O_VALUE. */
static Py_ALWAYS_INLINE inline void
p_value(Track *t, int32_t r)
{
    if (r > 1 && (t->rec[r].flags & R_GLOBAL))
        t->occ[t->rec[r].occ] |= O_VALUE;
}

/* Record r, when it is a call result, passes bits (O_RES_*) to the occurrence that made it. */
static Py_ALWAYS_INLINE inline void
p_res(Track *t, int32_t r, uint64_t bits)
{
    if (r > 1 && (t->rec[r].flags & R_CALLRES) && t->rec[r].occ >= 0)
        t->occ[t->rec[r].occ] |= bits;
}

/* The positions of items[0..n) holding call results: (is << P_IS_SHIFT) | (has << P_HAS_SHIFT).
 * Results fed to the call get O_RES_FED; so do results inside a tuple argument (__newobj_ex__'s
 * args), looked at one level down. */
static uint64_t
p_positions(Track *t, const int32_t *items, Py_ssize_t n, int fed)
{
    uint64_t is = 0, has = 0;
    Py_ssize_t i, j;
    if (n > MAX_ARGS) {
        t->noplan = 1;
        return 0;
    }
    for (i = 0; i < n; i++) {
        int32_t r = items[i];
        if (r <= 1)
            continue;
        if (t->rec[r].flags & R_CALLRES) {
            is |= 1u << i;
            has |= 1u << i;
            if (fed)
                p_res(t, r, O_RES_FED);
        }
        else if (t->rec[r].flags & R_HASCALL) {
            has |= 1u << i;
            if (t->rec[r].flags & R_TUPLE) {
                Py_ssize_t len = t->rec[r].plen;
                const int32_t *its = len <= SHORT_TUPLE ? t->rec[r].items : t->pool + t->rec[r].poff;
                if (len > MAX_ARGS) {
                    t->noplan = 1;
                    return 0;
                }
                for (j = 0; fed && j < len; j++)
                    p_res(t, its[j], O_RES_FED);
            }
        }
    }
    return (is << P_IS_SHIFT) | (has << P_HAS_SHIFT);
}

/* The positions of a call's argument tuple record a (REDUCE, NEWOBJ). */
static uint64_t
p_args(Track *t, int32_t a)
{
    if (a <= 1)
        return 0;  /* a scalar: the real call fails (arguments must be a tuple) */
    if (t->rec[a].flags & R_CALLRES) {
        t->noplan = 1;  /* tuple(...)'s result as an argument tuple: the static pass refuses it */
        return 0;
    }
    if (t->rec[a].flags & R_TUPLE) {
        Py_ssize_t len = t->rec[a].plen;
        if (len > MAX_ARGS) {
            t->noplan = 1;
            return 0;
        }
        return p_positions(t, len <= SHORT_TUPLE ? t->rec[a].items : t->pool + t->rec[a].poff, len, 1);
    }
    if (t->rec[a].flags & R_HASCALL)
        t->noplan = 1;  /* a list or dict as arguments: the real call fails; keep it simple */
    return 0;
}

/* Before a call: its callee (a global occurrence, or noplan) gets `how` and the argument bits. */
static Py_ALWAYS_INLINE inline void
p_callee(Track *t, int32_t callee, uint64_t how, uint64_t positions)
{
    if (callee <= 1 || !(t->rec[callee].flags & R_GLOBAL)) {
        t->noplan = 1;  /* a callable computed at load time */
        return;
    }
    t->occ[t->rec[callee].occ] |= how | positions;
}

/* After a call: the new top of the stack is its result, made by occurrence `occ`, whose pushing
 * began where its callee's did. */
static Py_ALWAYS_INLINE inline void
p_result(Track *t, int32_t callee, Py_ssize_t start)
{
    int32_t r = t->stack[t->sp - 1];
    t->rec[r].flags |= R_CALLRES;
    t->rec[r].occ = callee > 1 ? t->rec[callee].occ : -1;
    t->starts[t->sp - 1] = start;
}

/* A new global occurrence on the stack (GLOBAL, STACK_GLOBAL), or -1. */
static int
p_global(Track *t, uint64_t bits)
{
    int32_t r;
    if (t->nocc >= t->occcap
        && grow_from((void **)&t->occ, &t->occcap, t->nocc + 1, sizeof(uint64_t), t->occ0) < 0)
        return t->oom = 1, -1;
    if (t->nocc >= t->opcap
        && grow_from((void **)&t->occpos, &t->opcap, t->nocc + 1, sizeof(Py_ssize_t), t->occpos0) < 0)
        return t->oom = 1, -1;
    t->occ[t->nocc] = bits;
    t->occpos[t->nocc] = t->at;
    r = t_new(t, 0, 0);
    if (r < 0)
        return -1;
    t->rec[r].flags |= R_GLOBAL;
    t->rec[r].occ = (int32_t)t->nocc++;
    return r;
}

static Py_ALWAYS_INLINE inline int
t_check_depth(Track *t, int64_t depth)
{
    if (t->max_depth >= 0 && depth + t->slack > t->max_depth) {
        t->limit = "max_depth";
        t->limit_value = depth + t->slack;
        return -1;
    }
    return 0;
}

/* Put items into target (APPEND(S), SETITEM(S), ADDITEMS, BUILD). In plan mode, `how` is the
 * target's O_* bit for what is done to it (0 for a container being made). */
static Py_ALWAYS_INLINE inline int
t_insert(Track *t, int32_t target, const int32_t *items, Py_ssize_t n, uint64_t how)
{
    int64_t d = 0;
    Py_ssize_t i;
    for (i = 0; i < n; i++) {
        int32_t r = items[i];
        if (r) {
            t->rec[r].flags |= R_EMBEDDED;
            if (t->rec[r].depth > d)
                d = t->rec[r].depth;
        }
    }
    if (t->plan) {
        int has = 0;
        for (i = 0; i < n; i++) {
            int32_t r = items[i];
            if (r > 1) {
                p_value(t, r);
                if (t->rec[r].flags & (R_CALLRES | R_HASCALL))
                    has = 1;
            }
        }
        if (target > 1) {
            Rec *tr = &t->rec[target];
            if (how && (tr->flags & R_GLOBAL))
                t->occ[tr->occ] |= O_MODIFIED;
            else if (how && (tr->flags & R_CALLRES))
                t->occ[tr->occ] |= how;
            else if (how == O_RES_BUILT || (how && !(tr->flags & R_BOX)))
                t->noplan = 1;  /* BUILD on a literal or container, SETITEM into a literal (a
                                 * bytearray takes it): refused by the static pass */
            if (has && !(tr->flags & R_HASCALL)) {
                if (tr->flags & R_EMBEDDED)
                    t->noplan = 1;  /* its holders' bits are stale */
                tr->flags |= R_HASCALL;
            }
        }
        else if (how)
            t->noplan = 1;
    }
    if (target == 0)
        return 0;  /* into a scalar or global: the real load fails, the static pass refuses it */
    t->rec[target].count += n;
    if (d + 1 > t->rec[target].depth) {
        if (t->rec[target].flags & R_EMBEDDED)
            t->slack += d + 1 - t->rec[target].depth;
        t->rec[target].depth = d + 1;
        return t_check_depth(t, d + 1);
    }
    return t->slack ? t_check_depth(t, t->rec[target].depth) : 0;
}

/* Keys of dicts and elements of sets whose hash is not randomized (ints, tuples, floats, objects):
 * a stream can pick them to collide, and a dict of n colliding keys costs n**2 / 2 comparisons.
 * Counted only when max_hashed is set (Limits.max_hashed_keys; off by default). */
static int
t_hashed(Track *t, const int32_t *items, Py_ssize_t n, Py_ssize_t step)
{
    Py_ssize_t i;
    if (t->max_hashed < 0)
        return 0;
    for (i = 0; i < n; i += step)
        if (!(t->rec[items[i]].flags & R_STR))
            t->hashed++;
    if (t->hashed > t->max_hashed) {
        t->limit = "max_hashed_keys";
        t->limit_value = t->hashed;
        return -1;
    }
    return 0;
}

/* A new container made of items (TUPLE*, LIST, DICT, FROZENSET); tuples keep their items. */
static Py_ALWAYS_INLINE inline int
t_container(Track *t, const int32_t *items, Py_ssize_t n, int is_tuple)
{
    int32_t r = t_new(t, 1, 0);
    if (r < 0)
        return -1;
    t->rec[r].flags |= R_BOX;
    if (is_tuple && n) {
        Rec *rec = &t->rec[r];
        if (n <= SHORT_TUPLE) {
            Py_ssize_t i;
            for (i = 0; i < n; i++)
                rec->items[i] = items[i];
        }
        else {
            Py_ssize_t keep = n < 16 ? n : 16;  /* t_call looks at the first 16 only */
            if (grow_from((void **)&t->pool, &t->poolcap, t->npool + keep, sizeof(int32_t), t->pool0) < 0)
                return t->oom = 1, -1;
            rec = &t->rec[r];
            memcpy(t->pool + t->npool, items, (size_t)keep * sizeof(int32_t));
            rec->poff = t->npool;
            t->npool += keep;
        }
        rec->plen = (int32_t)(n > INT32_MAX ? INT32_MAX : n);
        rec->flags |= R_TUPLE;
    }
    if (t_insert(t, r, items, n, 0) < 0)
        return -1;
    return t_push(t, r);
}

/* What consuming record r (a call argument or BUILD state) may copy. */
static Py_ALWAYS_INLINE inline int
t_consume(Track *t, int32_t r)
{
    if (r == 0 || t->rec[r].count == 0)
        return 0;
    if (!(t->rec[r].flags & R_USED)) {
        t->rec[r].flags |= R_USED;
        return 0;
    }
    t->copied += t->rec[r].count;
    if (t->max_copy >= 0 && t->copied > t->max_copy) {
        t->limit = "max_copy";
        t->limit_value = t->copied;
        return -1;
    }
    return 0;
}

/* A call (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST) on the argument records args[0..n). An argument
 * that is a tuple record is looked into (REDUCE's argument tuple), first items only. */
static int
t_call(Track *t, const int32_t *args, Py_ssize_t n)
{
    int64_t d = 0, count = 0;
    Py_ssize_t i, j;
    int32_t r;
    for (i = 0; i < n; i++) {
        int32_t a = args[i];
        if (!a)
            continue;
        t->rec[a].flags |= R_EMBEDDED;
        if (t->rec[a].depth > d)
            d = t->rec[a].depth;
        if (t->rec[a].flags & R_TUPLE) {
            Py_ssize_t len = t->rec[a].plen, shown = len < 16 ? len : 16;
            const int32_t *its = len <= SHORT_TUPLE ? t->rec[a].items : t->pool + t->rec[a].poff;
            if (t_consume(t, a) < 0)  /* the tuple itself, when reused: at most its length */
                return -1;
            for (j = 0; j < shown; j++) {
                int32_t item = its[j];
                if (t_consume(t, item) < 0)
                    return -1;
                if (item)
                    count += t->rec[item].count;
            }
        }
        else {
            if (t_consume(t, a) < 0)
                return -1;
            count += t->rec[a].count;
        }
    }
    if (t->max_hashed >= 0) {  /* set(L), frozenset(L), dict(pairs) hash what they copy */
        t->hashed += count;
        if (t->hashed > t->max_hashed) {
            t->limit = "max_hashed_keys";
            t->limit_value = t->hashed;
            return -1;
        }
    }
    r = t_new(t, d + 1, count);
    if (r < 0 || t_check_depth(t, d + 1) < 0)
        return -1;
    return t_push(t, r);
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

/* Pop the items above the last MARK; NULL (with *n = -1) when there is no mark. The items stay
 * readable at the returned pointer until the next push. */
static int32_t *
t_pop_mark(Track *t, Py_ssize_t *n)
{
    Py_ssize_t mark;
    if (t->nm == 0) {
        *n = -1;
        return NULL;
    }
    mark = t->marks[--t->nm];
    *n = t->sp - mark;
    t->sp = mark;
    return t->stack + mark;
}

/* The stack effect of one opcode on the records (see Track). k: the byte length of a literal
 * argument; idx: a GET's memo index. Returns 0, or -1 with t->limit, t->oom or *why set. In plan
 * mode it also keeps the plan (see "The plan"). */
static int
t_step(Track *t, unsigned char op, Py_ssize_t k, uint64_t idx, const char **why)
{
    int32_t *items, r, a[2];
    Py_ssize_t n, st = 0;

    switch (op) {
    case 'B': case 'X': case 'T': case 0x8d: case 0x8e: case 0x96: case 'S': case 'V':
        if (k > BIG_LITERAL) {
            r = t_new(t, 0, k);
            if (r < 0)
                return -1;
            if (op != 0x96)
                t->rec[r].flags |= R_STR;
            return t_push(t, r);
        }
        return t_push(t, op == 0x96 ? 0 : 1);
    case 'U': case 'C': case 0x8c:
        return t_push(t, 1);
    case 0x8a: case 0x8b:
        if (t->max_int_bytes >= 0 && k > t->max_int_bytes)
            t->bigint = 1;
        return t_push(t, 0);
    case 'I': case 'L':
        /* decimal digits: about 2.41 per byte of a binary integer */
        if (t->max_int_bytes >= 0 && k * 100 > (Py_ssize_t)t->max_int_bytes * 241)
            t->bigint = 1;
        return t_push(t, 0);
    case 'c':
        if (t->plan) {
            r = p_global(t, 0);
            return r < 0 ? -1 : t_push(t, r);
        }
        return t_push(t, 0);
    case 0x93:
        if (t->sp < 2)
            goto underflow;
        if (t->plan) {
            st = t->starts[t->sp - 2];
            t->sp -= 2;
            r = p_global(t, 0);
            if (r < 0 || t_push(t, r) < 0)
                return -1;
            t->starts[t->sp - 1] = st;
            return 0;
        }
        t->sp -= 2;
        return t_push(t, 0);
    case 'P': case 0x82: case 0x83: case 0x84: case 0x97:
        t->noplan = 1;
        return t_push(t, 0);
    case 'F': case 'J': case 'K': case 'M': case 'G': case 'N': case 0x88: case 0x89:
        return t_push(t, 0);
    case '(':
        if (grow_from((void **)&t->marks, &t->mcap, t->nm + 1, sizeof(Py_ssize_t), t->marks0) < 0)
            return t->oom = 1, -1;
        if (t->plan) {
            if (grow_from((void **)&t->markpos, &t->mpcap, t->nm + 1, sizeof(Py_ssize_t), t->markpos0) < 0)
                return t->oom = 1, -1;
            t->markpos[t->nm] = t->at;
        }
        t->marks[t->nm++] = t->sp;
        return 0;
    case ')':
        return t_container(t, NULL, 0, 1);
    case ']': case '}': case 0x8f:
        return t_container(t, NULL, 0, 0);
    case 't': case 'l': case 'd': case 0x91:
        items = t_pop_mark(t, &n);
        if (n < 0)
            goto nomark;
        if (t->plan)
            st = t->markpos[t->nm];
        if ((op == 'd' || op == 0x91) && t_hashed(t, items, n, op == 'd' ? 2 : 1) < 0)
            return -1;
        if (t_container(t, items, n, op == 't') < 0)
            return -1;
        if (t->plan)
            t->starts[t->sp - 1] = st;
        return 0;
    case 0x85: case 0x86: case 0x87:
        n = op - 0x85 + 1;
        if (t->sp < n)
            goto underflow;
        if (t->plan)
            st = t->starts[t->sp - n];
        t->sp -= n;
        if (t_container(t, t->stack + t->sp, n, 1) < 0)
            return -1;
        if (t->plan)
            t->starts[t->sp - 1] = st;
        return 0;
    case 'a': case 's':
        n = op == 'a' ? 1 : 2;
        if (t->sp < n + 1)
            goto underflow;
        t->sp -= n;
        if (op == 's' && t_hashed(t, t->stack + t->sp, 1, 1) < 0)
            return -1;
        return t_insert(t, t->stack[t->sp - 1], t->stack + t->sp, n, O_RES_MUTATED);
    case 'e': case 'u': case 0x90:
        items = t_pop_mark(t, &n);
        if (n < 0)
            goto nomark;
        if (t->sp < 1)
            goto underflow;
        if (op != 'e' && t_hashed(t, items, n, op == 'u' ? 2 : 1) < 0)
            return -1;
        return t_insert(t, t->stack[t->sp - 1], items, n, O_RES_MUTATED);
    case '0':
        if (t->nm > 0 && t->marks[t->nm - 1] == t->sp)
            t->nm--;
        else if (t->sp > 0)
            t->sp--;
        else
            goto underflow;
        return 0;
    case '1':
        items = t_pop_mark(t, &n);
        return n < 0 ? (*why = "POP_MARK without a MARK", -1) : 0;
    case '2':
        if (t->sp < 1)
            goto underflow;
        t->noplan = 1;
        return t_push(t, t->stack[t->sp - 1]);
    case 'p': case 'q': case 'r': case 0x94:
        if (t->sp < 1)
            goto underflow;
        if (grow_from((void **)&t->memo, &t->memocap, t->nmemo + 1, sizeof(int32_t), t->memo0) < 0)
            return t->oom = 1, -1;
        t->memo[t->nmemo++] = t->stack[t->sp - 1];
        return 0;
    case 'g': case 'h': case 'j':
        if (idx >= (uint64_t)t->nmemo) {
            *why = "memo index was never stored";
            return -1;
        }
        return t_push(t, t->memo[idx]);
    case 'R': case 0x81: {
        int32_t callee;
        if (t->sp < 2)
            goto underflow;
        callee = t->stack[t->sp - 2];
        a[0] = t->stack[t->sp - 1];
        if (t->plan) {
            st = t->starts[t->sp - 2];
            p_callee(t, callee, op == 'R' ? O_CALL : O_NEWOBJ, p_args(t, a[0]));
        }
        t->sp -= 2;
        if (t_call(t, a, 1) < 0)
            return -1;
        if (t->plan)
            p_result(t, callee, st);
        return 0;
    }
    case 0x92:
        if (t->sp < 3)
            goto underflow;
        t->noplan = 1;  /* NEWOBJ_EX: keyword arguments, which the static pass refuses */
        a[0] = t->stack[t->sp - 2];
        a[1] = t->stack[t->sp - 1];
        t->sp -= 3;
        return t_call(t, a, 2);
    case 'o': case 'i': {
        int32_t callee = 0;
        items = t_pop_mark(t, &n);
        if (n < 0)
            goto nomark;
        if (op == 'o') {
            if (n < 1)
                goto underflow;
            callee = items[0];
            items++;
            n--;
        }
        if (t->plan) {
            Py_ssize_t i;
            uint64_t positions;
            st = t->markpos[t->nm];
            for (i = 0; i < n; i++)
                p_value(t, items[i]);
            positions = p_positions(t, items, n, 1);
            if (op == 'i') {
                /* INST names its class inline: the C unpickler calls find_class here */
                callee = p_global(t, 0);
                if (callee < 0)
                    return -1;
            }
            p_callee(t, callee, O_CALL, positions);
        }
        {
            /* copy out: t_call pushes, which may move the stack */
            int32_t small[16], *copy = n <= 16 ? small : PyMem_Malloc((size_t)n * sizeof(int32_t));
            int res;
            if (copy == NULL)
                return t->oom = 1, -1;
            memcpy(copy, items, (size_t)n * sizeof(int32_t));
            res = t_call(t, copy, n);
            if (copy != small)
                PyMem_Free(copy);
            if (res < 0)
                return res;
        }
        if (t->plan)
            p_result(t, callee, st);
        return 0;
    }
    case 'b':
        if (t->sp < 2)
            goto underflow;
        a[0] = t->stack[--t->sp];
        if (t->plan) {
            int32_t target = t->stack[t->sp - 1], state = a[0];
            uint64_t bits = 0;
            if (target <= 1 || !(t->rec[target].flags & R_CALLRES))
                t->noplan = 1;  /* BUILD on a global, literal or container: refused by the static pass */
            if (state > 1) {
                Rec *sr = &t->rec[state];
                if (sr->flags & R_CALLRES)
                    bits |= B_IS | B_HAS;
                else if (sr->flags & R_HASCALL)
                    bits |= B_HAS;
                if ((sr->flags & R_TUPLE) && (bits & B_HAS)) {
                    Py_ssize_t len = sr->plen;
                    bits |= p_positions(t, len <= SHORT_TUPLE ? sr->items : t->pool + sr->poff, len, 0);
                }
            }
            if (t->nbuild + 3 > t->bcap
                && grow_from((void **)&t->builds, &t->bcap, t->nbuild + 3, sizeof(uint64_t), t->builds0) < 0)
                return t->oom = 1, -1;
            t->builds[t->nbuild++] = (uint64_t)t->at;
            t->builds[t->nbuild++] = (uint64_t)t->starts[t->sp - 1];
            t->builds[t->nbuild++] = bits;
        }
        if (t_consume(t, a[0]) < 0)
            return -1;
        if (a[0] && (t->rec[a[0]].flags & R_TUPLE)) {  /* (dict state, slot state) or numpy's tuple */
            Py_ssize_t j, len = t->rec[a[0]].plen;
            for (j = 0; j < len && j < 16; j++) {
                int32_t item = len <= SHORT_TUPLE ? t->rec[a[0]].items[j] : t->pool[t->rec[a[0]].poff + j];
                if (t_consume(t, item) < 0)
                    return -1;
            }
        }
        return t_insert(t, t->stack[t->sp - 1], a, 1, O_RES_BUILT);
    case 'Q':
        if (t->sp < 1)
            goto underflow;
        t->noplan = 1;
        t->stack[t->sp - 1] = 0;
        return 0;
    case '.':
        if (t->sp < 1)
            goto underflow;
        if (t->plan) {
            if (t->sp != 1 || t->nm != 0)
                t->noplan = 1;
            p_value(t, t->stack[t->sp - 1]);
        }
        return 0;
    case 0x95:  /* FRAME */
        if (t->plan) {
            if (grow_from((void **)&t->frames, &t->fcap, t->nframe + 1, sizeof(Py_ssize_t), t->frames0) < 0)
                return t->oom = 1, -1;
            t->frames[t->nframe++] = t->at;
        }
        return 0;
    case 0x80:  /* PROTO */
        if (t->at != 0)
            t->noplan = 1;
        return 0;
    default:  /* READONLY_BUFFER */
        t->noplan = 1;
        return 0;
    }
underflow:
    *why = "stack underflow";
    return -1;
nomark:
    *why = "no MARK on the stack";
    return -1;
}

/* None when the stream is sound, (position, message) for its first problem, and
 * (position, message, limit name, measured) when a limit of t is exceeded. With stop_at_active,
 * False as soon as an active opcode is seen (its verdict is then "not plain data" either way). */
static PyObject *
walk(const unsigned char *data, Py_ssize_t n, int *active, int stop_at_active, Track *t)
{
    Py_ssize_t pos = 0;
    Py_ssize_t frame_end = -1;  /* end of the current FRAME, -1 outside frames */
    Py_ssize_t memo_count = 0;  /* memo entries made so far: the only index a PUT may use */

    /* Plain data (stop_at_active: no call, no BUILD) copies nothing, and cannot nest deeper than it
     * has bytes: a short plain stream needs no tracking (the fast path for small payloads). */
    if (stop_at_active && t->max_hashed < 0 && (t->max_depth < 0 || n <= t->max_depth))
        t->broken = 1;

    for (;;) {
        Py_ssize_t at = pos, limit, avail, k = 0;
        uint64_t idx = 0;
        unsigned char op;
        int kind;
        const char *why = NULL;

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
        if (ACTIVE[op]) {  /* one store per active opcode: *active may alias data, so none per opcode */
            *active = 1;
            if (stop_at_active)
                Py_RETURN_FALSE;
        }
        avail = limit - pos;  /* argument bytes readable without leaving the frame or stream */

        switch (kind) {
        case A_NONE:
            break;
        case A_STOP:
            if (pos != n)
                return refuse(pos, "%zd bytes after STOP", n - pos);
            break;
        case A_FIX:
            if (avail < FIXSIZE[op])
                goto truncated;
            if (op == 'h' || op == 'j') {
                idx = op == 'h' ? data[pos] : le(data + pos, 4);
                pos += FIXSIZE[op];
                /* inline tracking of the most frequent opcodes (one dispatch, not two) */
                if (!t->broken && t->sp < t->scap && idx < (uint64_t)t->nmemo
                    && (!t->plan || t->sp < t->stcap)) {
                    if (t->plan)
                        t->starts[t->sp] = at;
                    t->stack[t->sp++] = t->memo[idx];
                    continue;
                }
                break;
            }
            pos += FIXSIZE[op];
            if (!t->broken && t->sp < t->scap && (!t->plan || (t->sp < t->stcap && op < 0x80))) {
                /* ints, floats, EXT: a scalar (plan mode: EXT goes to t_step, which sets noplan) */
                if (t->plan)
                    t->starts[t->sp] = at;
                t->stack[t->sp++] = 0;
                continue;
            }
            break;
        case A_PROTO:
            if (avail < 1)
                goto truncated;
            if (data[pos] > HIGHEST_PROTOCOL)
                return refuse(at, "unsupported pickle protocol %d", (int)data[pos]);
            pos += 1;
            break;
        case A_CNT1: {
            if (avail < 1)
                goto truncated;
            k = data[pos];
            if (avail - 1 < k)
                goto truncated;
            pos += 1 + k;
            if (op != 0x8a && !t->broken && t->sp < t->scap && (!t->plan || t->sp < t->stcap)) {
                /* short str or bytes */
                if (t->plan)
                    t->starts[t->sp] = at;
                t->stack[t->sp++] = 1;
                continue;
            }
            break;
        }
        case A_CNT4U:
        case A_CNT4S:
        case A_CNT8: {
            int width = kind == A_CNT8 ? 8 : 4;
            uint64_t kk;
            if (avail < width)
                goto truncated;
            kk = le(data + pos, width);
            if (kind == A_CNT4S && (kk & 0x80000000u))
                return refuse(at, "negative byte count for opcode 0x%02x", (int)op);
            if ((uint64_t)(avail - width) < kk)
                goto truncated;
            k = (Py_ssize_t)kk;
            pos += width + k;
            break;
        }
        case A_LINE:
        case A_LINE2: {
            int lines = kind == A_LINE2 ? 2 : 1;
            Py_ssize_t first = pos;
            while (lines--) {
                const unsigned char *nl = memchr(data + pos, '\n', (size_t)(limit - pos));
                if (nl == NULL)
                    goto truncated;
                pos = (Py_ssize_t)(nl - data) + 1;
            }
            k = pos - first - 1;
            if (op == 'g') {
                const unsigned char *p = data + first, *nl = data + pos - 1;
                if (nl == p)
                    return refuse(at, "empty GET index");
                for (; p < nl; p++) {
                    if (*p < '0' || *p > '9')
                        return refuse(at, "GET index is not plain decimal digits");
                    idx = idx * 10 + (uint64_t)(*p - '0');
                    if (idx > (uint64_t)memo_count)
                        break;
                }
            }
            break;
        }
        case A_MEMOIZE:
            memo_count++;
            if (!t->broken && t->sp > 0 && t->nmemo < t->memocap) {
                t->memo[t->nmemo++] = t->stack[t->sp - 1];
                continue;
            }
            break;
        case A_PUT1:
        case A_PUT4:
        case A_PUTNL: {
            uint64_t pidx = 0;
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
                    pidx = pidx * 10 + (uint64_t)(*p - '0');
                    if (pidx > (uint64_t)memo_count)
                        break;  /* already too large: stop before it can overflow */
                }
                pos = (Py_ssize_t)(nl - data) + 1;
            }
            else {
                int width = kind == A_PUT1 ? 1 : 4;
                if (avail < width)
                    goto truncated;
                pidx = le(data + pos, width);
                pos += width;
            }
            if (pidx > (uint64_t)memo_count)
                return refuse(at, "memo index %llu skips ahead of the next free index %zd "
                              "(the C unpickler would allocate a memo array that large)",
                              (unsigned long long)pidx, memo_count);
            if (pidx < (uint64_t)memo_count)
                return refuse(at, "memo index %llu overwritten (memo confusion)",
                              (unsigned long long)pidx);
            memo_count++;
            break;
        }
        case A_FRAME: {
            uint64_t kk;
            if (frame_end >= 0)
                return refuse(at, "FRAME inside a frame");
            if (avail < 8)
                goto truncated;
            kk = le(data + pos, 8);
            pos += 8;
            if ((uint64_t)(n - pos) < kk)
                return refuse(at, "frame of %llu bytes runs past the end of the stream",
                              (unsigned long long)kk);
            frame_end = pos + (Py_ssize_t)kk;
            break;
        }
        default:
            return refuse(at, "byte 0x%02x is not a pickle opcode", (int)op);
        }
        t->at = at;
        if (!t->broken && t_step(t, op, k, idx, &why) < 0) {
            if (t->oom)
                return PyErr_NoMemory();
            if (t->limit != NULL)
                return Py_BuildValue("(nssL)", at, "resource limit exceeded",
                                     t->limit, (long long)t->limit_value);
            /* A stack the real unpickler would fail on at this opcode (underflow, no MARK, a GET of
             * an index never stored): nothing after it runs, so tracking stops here; the parse goes
             * on, and the static pass names the problem. */
            t->broken = 1;
        }
        if (op == '.') {
            t->memo_end = memo_count;
            Py_RETURN_NONE;
        }
        continue;
    truncated:
        if (frame_end >= 0)
            return refuse(at, "the argument of opcode 0x%02x runs past the end of its frame", (int)op);
        return refuse(at, "stream truncated inside the argument of opcode 0x%02x", (int)op);
    }
}

/* Default limits (anypickle.safe.Limits mirrors them). */
enum { DEFAULT_MAX_DEPTH = 1000 };
#define DEFAULT_MAX_COPY (50LL * 1000 * 1000)
#define DEFAULT_MAX_INT_BYTES 1786  /* 4300 decimal digits */

static void
track_init(Track *t, long long max_depth, long long max_copy, Py_ssize_t max_int_bytes, long long max_hashed)
{
    /* Only the header fields are cleared: the inline blocks are written before they are read. */
    memset(t, 0, offsetof(Track, stack0));
    t->stack = t->stack0; t->scap = INLINE;
    t->marks = t->marks0; t->mcap = INLINE;
    t->memo = t->memo0; t->memocap = INLINE;
    t->rec = t->rec0;
    t->rcap = INLINE;
    t->pool = t->pool0; t->poolcap = INLINE;
    cache_take(&cache_stack, (void **)&t->stack, &t->scap);
    cache_take(&cache_marks, (void **)&t->marks, &t->mcap);
    cache_take(&cache_memo, (void **)&t->memo, &t->memocap);
    cache_take(&cache_rec, (void **)&t->rec, &t->rcap);
    cache_take(&cache_pool, (void **)&t->pool, &t->poolcap);
    t->max_depth = max_depth;
    t->max_copy = max_copy;
    t->max_int_bytes = max_int_bytes;
    t->max_hashed = max_hashed;
}

/* Records 0 (scalars and globals) and 1 (short str and bytes literals). */
static int
track_start(Track *t)
{
    if (t_new(t, 0, 0) < 0 || t_new(t, 0, 0) < 0) {
        track_free(t);
        PyErr_NoMemory();
        return -1;
    }
    t->rec[1].flags = R_STR;
    return 0;
}

/* walk() over any bytes-like object; *active tells whether an importing/calling opcode was seen. */
static PyObject *
walk_buffer(PyObject *arg, int *active, int stop_at_active, Track *t)
{
    Py_buffer view;
    PyObject *result;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    result = walk((const unsigned char *)view.buf, view.len, active, stop_at_active, t);
    PyBuffer_Release(&view);
    /* record 0: scalars and globals */
    return result;
}

static int
parse_limits(PyObject *const *args, Py_ssize_t nargs, Track *t, const char *name)
{
    long long max_depth = DEFAULT_MAX_DEPTH, max_copy = DEFAULT_MAX_COPY, max_hashed = -1;
    Py_ssize_t max_int_bytes = DEFAULT_MAX_INT_BYTES;
    if (nargs < 1 || nargs > 5) {
        PyErr_Format(PyExc_TypeError,
                     "%s(data, max_depth=1000, max_copy=50000000, max_int_bytes=1786, max_hashed_keys=-1)", name);
        return -1;
    }
    if (nargs > 4 && (max_hashed = PyLong_AsLongLong(args[4])) == -1 && PyErr_Occurred())
        return -1;
    if (nargs > 1 && (max_depth = PyLong_AsLongLong(args[1])) == -1 && PyErr_Occurred())
        return -1;
    if (nargs > 2 && (max_copy = PyLong_AsLongLong(args[2])) == -1 && PyErr_Occurred())
        return -1;
    if (nargs > 3 && (max_int_bytes = PyLong_AsSsize_t(args[3])) == -1 && PyErr_Occurred())
        return -1;
    track_init(t, max_depth, max_copy, max_int_bytes, max_hashed);
    return 0;
}

static PyObject *
memo_check(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int active = 0;
    Track t;
    PyObject *result;

    if (parse_limits(args, nargs, &t, "memo_check") < 0 || track_start(&t) < 0)
        return NULL;
    result = walk_buffer(args[0], &active, 0, &t);
    if (result == Py_None && t.bigint) {
        Py_DECREF(result);
        result = Py_NewRef(Py_False);
    }
    track_free(&t);
    return result;
}

static PyObject *
plain_data(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int active = 0;
    Track t;
    PyObject *result;

    if (parse_limits(args, nargs, &t, "plain_data") < 0 || track_start(&t) < 0)
        return NULL;
    result = walk_buffer(args[0], &active, 1, &t);
    track_free(&t);
    if (result == NULL)
        return NULL;
    if (result != Py_None)
        active = 1;
    Py_DECREF(result);
    return PyBool_FromLong(!active);
}

static int
cmp_ssize(const void *a, const void *b)
{
    Py_ssize_t x = *(const Py_ssize_t *)a, y = *(const Py_ssize_t *)b;
    return x < y ? -1 : x > y;
}

/* The plan of a walk in plan mode (see "The plan"): (occurrences, builds, rewritten).
 * rewritten: the stream with each BUILD turned into a call of the BUILD function, which a GLOBAL
 * `_ _` inserted where the pushing of the BUILD's target began puts on the stack, and its FRAMEs
 * replaced by one around all of it (a framed stream without BUILD: data itself); occurrences: the O_* bits of each call the C unpickler makes to
 * find_class on it, in order (OCC_BUILDER for the inserted GLOBALs); builds: the B_* bits of each
 * BUILD's state, in stream order. */
static PyObject *
make_plan(Track *t, const unsigned char *data, Py_ssize_t n, PyObject *source)
{
    PyObject *occ = NULL, *builds = NULL, *rewritten = NULL;
    Py_ssize_t i, nb = t->nbuild / 3;

    occ = PyTuple_New(t->nocc + nb);
    builds = PyTuple_New(nb);
    if (occ == NULL || builds == NULL)
        goto error;
    for (i = 0; i < nb; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(t->builds[3 * i + 2]);
        if (v == NULL)
            goto error;
        PyTuple_SET_ITEM(builds, i, v);
    }
    if (nb == 0 && t->nframe > 0 && source != NULL) {
        /* nothing to rewrite in a framed stream: load it as it is */
        rewritten = Py_NewRef(source);
        for (i = 0; i < t->nocc; i++) {
            PyObject *v = PyLong_FromUnsignedLongLong(t->occ[i]);
            if (v == NULL)
                goto error;
            PyTuple_SET_ITEM(occ, i, v);
        }
    }
    else {
        /* One FRAME around everything after PROTO: the C unpickler then reads the stream with one
         * read() call from a BytesIO (an unframed stream costs one call per opcode). */
        Py_ssize_t head = n >= 2 && data[0] == 0x80 ? 2 : 0;
        Py_ssize_t size = n - 9 * t->nframe + 6 * nb + 9, pos = head, ii = 0, bi = 0, fi = 0;
        Py_ssize_t small[16], *ins = nb <= 16 ? small : PyMem_Malloc((size_t)(nb ? nb : 1) * sizeof(Py_ssize_t));
        static const unsigned char get[5] = {'c', '_', '\n', '_', '\n'};
        unsigned char *o;
        uint64_t body;
        Py_ssize_t oi = 0, k = 0;
        if (ins == NULL) {
            PyErr_NoMemory();
            goto error;
        }
        for (i = 0; i < nb; i++)
            ins[i] = (Py_ssize_t)t->builds[3 * i + 1];
        qsort(ins, (size_t)nb, sizeof(Py_ssize_t), cmp_ssize);
        /* find_class's calls in the rewritten stream: the occurrences and, before the opcode at
         * each insertion point, the inserted GLOBAL of the BUILD function (OCC_BUILDER) */
        for (i = 0; i <= nb; i++) {
            Py_ssize_t until = i < nb ? ins[i] : PY_SSIZE_T_MAX;
            for (; oi < t->nocc && t->occpos[oi] < until; oi++) {
                PyObject *v = PyLong_FromUnsignedLongLong(t->occ[oi]);
                if (v == NULL) {
                    if (ins != small)
                        PyMem_Free(ins);
                    goto error;
                }
                PyTuple_SET_ITEM(occ, k++, v);
            }
            if (i < nb) {
                PyObject *v = PyLong_FromUnsignedLongLong(OCC_BUILDER);
                if (v == NULL) {
                    if (ins != small)
                        PyMem_Free(ins);
                    goto error;
                }
                PyTuple_SET_ITEM(occ, k++, v);
            }
        }
        rewritten = PyBytes_FromStringAndSize(NULL, size);
        if (rewritten == NULL) {
            if (ins != small)
                PyMem_Free(ins);
            goto error;
        }
        o = (unsigned char *)PyBytes_AS_STRING(rewritten);
        memcpy(o, data, (size_t)head);
        o += head;
        *o++ = 0x95;
        body = (uint64_t)(size - head - 9);
        for (i = 0; i < 8; i++)
            *o++ = (unsigned char)(body >> (8 * i));
        while (pos < n) {
            Py_ssize_t next = n;
            if (ii < nb && ins[ii] < next)
                next = ins[ii];
            if (fi < t->nframe && t->frames[fi] < next)
                next = t->frames[fi];
            if (bi < nb && (Py_ssize_t)t->builds[3 * bi] < next)
                next = (Py_ssize_t)t->builds[3 * bi];
            memcpy(o, data + pos, (size_t)(next - pos));
            o += next - pos;
            pos = next;
            if (pos == n)
                break;
            if (ii < nb && ins[ii] == pos) {  /* push the BUILD function first */
                memcpy(o, get, 5);
                o += 5;
                ii++;
            }
            else if (fi < t->nframe && t->frames[fi] == pos) {
                pos += 9;
                fi++;
            }
            else {  /* BUILD -> TUPLE2 REDUCE */
                *o++ = 0x86;
                *o++ = 'R';
                pos++;
                bi++;
            }
        }
        if (ins != small)
            PyMem_Free(ins);
        if (o != (unsigned char *)PyBytes_AS_STRING(rewritten) + size) {
            PyErr_SetString(PyExc_SystemError, "anypickle.safe._opwalk: plan rewrite size mismatch");
            goto error;
        }
    }
    return Py_BuildValue("(NNN)", occ, builds, rewritten);
error:
    Py_XDECREF(occ);
    Py_XDECREF(builds);
    Py_XDECREF(rewritten);
    return NULL;
}

/* memo_check, and for a sound stream naming globals that the plan describes, the plan instead of
 * None (see "The plan"). */
static PyObject *
safe_plan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int active = 0;
    Track t;
    Py_buffer view;
    PyObject *result;

    if (parse_limits(args, nargs, &t, "safe_plan") < 0)
        return NULL;
    t.plan = 1;
    t.starts = t.starts0; t.stcap = INLINE;
    t.markpos = t.markpos0; t.mpcap = INLINE;
    t.occ = t.occ0; t.occcap = INLINE;
    t.occpos = t.occpos0; t.opcap = INLINE;
    t.builds = t.builds0; t.bcap = INLINE;
    t.frames = t.frames0; t.fcap = 8;
    if (track_start(&t) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        track_free(&t);
        return NULL;
    }
    result = walk((const unsigned char *)view.buf, view.len, &active, 0, &t);
    if (result == Py_None) {
        if (t.bigint) {
            Py_DECREF(result);
            result = Py_NewRef(Py_False);
        }
        else if (!t.broken && !t.noplan && t.nocc > 0) {
            Py_DECREF(result);
            result = make_plan(&t, (const unsigned char *)view.buf, view.len,
                               PyBytes_CheckExact(args[0]) ? args[0] : NULL);
        }
    }
    PyBuffer_Release(&view);
    track_free(&t);
    return result;
}

PyDoc_STRVAR(safe_plan_doc,
"safe_plan(data, max_depth=1000, max_copy=50000000, max_int_bytes=1786, max_hashed_keys=-1, /)\n--\n\n"
"memo_check(data, ...), except that a sound stream naming globals whose shape the plan describes\n"
"gives its plan, (occurrences, builds, rewritten), instead of None (see the source).");

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

/* ---- safe_fast: safe_loads(data)'s first steps, in one C call -------------------------------------
 *
 * What anypickle.safe._loads.safe_loads does first for bytes with the default allowlist and limits,
 * without its Python frames: plain data (plain_data) goes to pickle.loads; a stream of at most
 * PLAN_FIRST bytes with a plan goes to the planned load (_planload.c); a sound stream without a plan,
 * or a larger one, to the inert-only load, and a larger one that names a non-inert global (up to
 * PLAN_MAX bytes) then to the planned load. Anything else, any failure included, gives MISS and
 * safe_loads takes its usual way, which redoes these steps or goes to the static pass: so this is a
 * shortcut of that function, never another verdict. */
PyObject *planned_load(PyObject *module, PyObject *const *args, Py_ssize_t nargs);  /* _planload.c */
PyObject *inert_load(PyObject *data, int py2, int proto);                         /* _planload.c */
int needs_scan_pending(void);                                                     /* _planload.c */
static PyObject *fast_args[6];           /* (data), max_depth, max_copy, max_int_bytes, max_hashed_keys, cap */
static PyObject *inverted_registry, *extension_cache;  /* copyreg's: EXT resolves through them */
enum { PLAN_FIRST = 8192, PLAN_MAX = 1 << 20 };

static PyObject *miss_if_exception(PyObject *r);

/* The planned load of data: its object, MISS, or NULL on an error that is no Exception. */
static PyObject *
fast_planned(PyObject *module, PyObject *plan, int py2)
{
    PyObject *load_args[3] = {plan, py2 ? Py_True : Py_False, fast_args[5]};
    return planned_load(module, load_args, 3);
}

static PyObject *
safe_fast(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *data, *verdict, *obj;
    const unsigned char *bytes;
    Py_ssize_t n;
    int proto, py2;

    if (nargs != 1 || fast_args[1] == NULL || !PyBytes_CheckExact(args[0]))
        return Py_NewRef(MISS);
    data = fast_args[0] = args[0];  /* borrowed, for the walks' argument vector */
    verdict = plain_data(module, fast_args, 5);
    if (verdict == NULL)
        goto error;
    if (verdict == Py_True) {
        Py_DECREF(verdict);
        fast_args[0] = NULL;
        return miss_if_exception(PyObject_CallOneArg(pickle_loads, data));
    }
    Py_DECREF(verdict);
    n = PyBytes_GET_SIZE(data);
    if (PyDict_GET_SIZE(inverted_registry) || PyDict_GET_SIZE(extension_cache)) {
        fast_args[0] = NULL;
        return Py_NewRef(MISS);
    }
    bytes = (const unsigned char *)PyBytes_AS_STRING(data);
    proto = n >= 2 && bytes[0] == 0x80 ? bytes[1] : 0;
    py2 = proto < 3;
    verdict = n <= PLAN_FIRST ? safe_plan(module, fast_args, 5) : memo_check(module, fast_args, 5);
    fast_args[0] = NULL;
    if (verdict == NULL)
        return miss_if_exception(NULL);
    if (PyTuple_CheckExact(verdict) && PyTuple_GET_SIZE(verdict) == 3) {  /* a plan */
        obj = fast_planned(module, verdict, py2);
        Py_DECREF(verdict);
        return obj;
    }
    if (verdict != Py_None) {  /* False (long integers), a refusal or a limit: the usual way */
        Py_DECREF(verdict);
        return Py_NewRef(MISS);
    }
    Py_DECREF(verdict);
    obj = inert_load(data, py2, proto);
    if (obj != NULL || !needs_scan_pending() || n <= PLAN_FIRST || n > PLAN_MAX)
        return miss_if_exception(obj);
    PyErr_Clear();  /* a larger stream naming a non-inert global: the planned load next */
    fast_args[0] = data;
    verdict = safe_plan(module, fast_args, 5);
    fast_args[0] = NULL;
    if (verdict == NULL)
        return miss_if_exception(NULL);
    if (PyTuple_CheckExact(verdict) && PyTuple_GET_SIZE(verdict) == 3)
        obj = fast_planned(module, verdict, py2);
    else
        obj = Py_NewRef(MISS);
    Py_DECREF(verdict);
    return obj;
error:
    fast_args[0] = NULL;
    return miss_if_exception(NULL);
}

/* MISS for an error that is an Exception (safe_loads' usual way then names it), r otherwise. */
static PyObject *
miss_if_exception(PyObject *r)
{
    if (r == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return Py_NewRef(MISS);
    }
    return r;
}

static PyObject *
configure_fast(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t i;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "configure_fast(max_depth, max_copy, max_int_bytes, max_hashed_keys, "
                                         "max_array_bytes)");
        return NULL;
    }
    for (i = 0; i < 5; i++) {
        if (!PyLong_CheckExact(args[i])) {
            PyErr_SetString(PyExc_TypeError, "configure_fast takes ints");
            return NULL;
        }
        Py_XSETREF(fast_args[i + 1], Py_NewRef(args[i]));
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(safe_fast_doc,
"safe_fast(data, /)\n--\n\n"
"safe_loads(data) with the default allowlist and limits, when data is bytes that plain_data, the\n"
"planned load or the inert-only load takes; MISS for anything else (safe_loads then takes its usual\n"
"way).");

PyDoc_STRVAR(configure_fast_doc,
"configure_fast(max_depth, max_copy, max_int_bytes, max_hashed_keys, max_array_bytes, /)\n--\n\n"
"The default limits safe_fast applies (anypickle.safe._loads calls it once).");


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
        Track t;
        PyObject *verdict;
        track_init(&t, DEFAULT_MAX_DEPTH, DEFAULT_MAX_COPY, DEFAULT_MAX_INT_BYTES, -1);
        if (track_start(&t) < 0)
            return NULL;
        verdict = walk(buf + ENVELOPE_SIZE, n - ENVELOPE_SIZE, &active, 1, &t);
        track_free(&t);
        if (verdict == NULL)
            return NULL;
        int sound = verdict == Py_None, active_seen = verdict == Py_False;
        Py_DECREF(verdict);
        if (!sound) {
            /* Not plain data: what the Python loads would do next, safe_loads(payload), starts with
             * safe_fast (once anypickle.safe._loads has configured it); MISS goes the Python way. */
            if (!active_seen || fast_args[1] == NULL)
                return Py_NewRef(MISS);
            payload = PyBytes_FromStringAndSize((const char *)buf + ENVELOPE_SIZE, n - ENVELOPE_SIZE);
            if (payload == NULL)
                return NULL;
            result = safe_fast(NULL, &payload, 1);
            Py_DECREF(payload);
            return result;
        }
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
    return safe ? miss_if_exception(result) : result;  /* safe: the safe path names the problem */
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

/* Code envelopes: the fast path of loads for unsigned function payloads (marshal, cloudpickle).
 * The header shape taken, as anypickle._envelope writes it: magic, format version 1, a backend id
 * whose loader the Python side names (code_loader_for), flags BYTECODE and at most LIBRARY and
 * SOURCE besides, reserved 0; the interpreter section equal to this interpreter's (so the check of
 * _envelope.check_interpreter holds), the LIBRARY section ASCII, the SOURCE section within the
 * data, the CRC-32 of all those bytes, and exactly payload-length bytes after it. Anything else is
 * MISS, for the Python loads, which accepts or explains it. */
enum { FLAG_BYTECODE = 1, FLAG_LIBRARY = 32, FLAG_SOURCE = 64, MAX_BACKEND_ID = 15 };

typedef struct {
    PyObject *interpreter;  /* bytes: _envelope._CURRENT_PACKED */
    PyObject *loader_for;   /* loader_for(backend id) -> (first, then or None) or None, asked once per id */
    PyObject *register_source;  /* _lines.register(block) */
    PyObject *on_error;     /* on_error(exc, data): raises the anypickle error of a failed load */
    PyObject *loaders[MAX_BACKEND_ID + 1];  /* the tuples loader_for gave; Py_None: not taken here */
} CodePath;

static void
code_path_clear(CodePath *c)
{
    int i;
    Py_CLEAR(c->interpreter);
    Py_CLEAR(c->loader_for);
    Py_CLEAR(c->register_source);
    Py_CLEAR(c->on_error);
    for (i = 0; i <= MAX_BACKEND_ID; i++)
        Py_CLEAR(c->loaders[i]);
}

static int
code_path_traverse(CodePath *c, visitproc visit, void *arg)
{
    int i;
    Py_VISIT(c->interpreter);
    Py_VISIT(c->loader_for);
    Py_VISIT(c->register_source);
    Py_VISIT(c->on_error);
    for (i = 0; i <= MAX_BACKEND_ID; i++)
        Py_VISIT(c->loaders[i]);
    return 0;
}

/* The last code header found valid, CRC included (when it fits): functions of one kind have one
 * payload length, hence one header, so most loads skip the CRC, as load_envelope's do. */
static unsigned char last_code_header[96];
static Py_ssize_t last_code_header_n = 0;

/* The loader tuple for backend id b, asked of loader_for on first use; Py_None (borrowed) when the
 * fast path does not take that backend; NULL with an exception set. */
static PyObject *
code_loader(CodePath *c, int b)
{
    PyObject *loader = c->loaders[b];
    if (loader == NULL) {
        PyObject *id = PyLong_FromLong(b);
        if (id == NULL)
            return NULL;
        loader = PyObject_CallOneArg(c->loader_for, id);
        Py_DECREF(id);
        if (loader == NULL)
            return NULL;
        if (loader != Py_None && !(PyTuple_CheckExact(loader) && PyTuple_GET_SIZE(loader) == 2
                                   && PyCallable_Check(PyTuple_GET_ITEM(loader, 0)))) {
            Py_DECREF(loader);
            PyErr_SetString(PyExc_SystemError, "anypickle: code loader_for must return (first, then) or None");
            return NULL;
        }
        if (c->loaders[b] != NULL) {  /* another thread asked too while loader_for ran: keep its answer */
            Py_DECREF(loader);
            return c->loaders[b];
        }
        c->loaders[b] = loader;
    }
    return loader;
}

/* The object of an unsigned code envelope (see above), a new reference to MISS for any other
 * input, or NULL with the anypickle error set (on_error raised it) or another exception. */
static PyObject *
load_code_envelope(CodePath *c, PyObject *data)
{
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data), pos, interp_n, source_at = 0, source_n = 0, i;
    int flags, backend;
    uint64_t payload_length;
    PyObject *loader, *payload, *result, *then;

    interp_n = PyBytes_GET_SIZE(c->interpreter);
    if (n < 16 + interp_n + 4 || memcmp(buf, ENVELOPE_PREFIX, 5) != 0)
        return Py_NewRef(MISS);
    backend = buf[5];
    flags = buf[6];
    if (backend > MAX_BACKEND_ID || !(flags & FLAG_BYTECODE)
        || (flags & ~(FLAG_BYTECODE | FLAG_LIBRARY | FLAG_SOURCE)) || buf[7] != 0)
        return Py_NewRef(MISS);
    payload_length = le(buf + 8, 8);
    pos = 16;
    if (memcmp(buf + pos, PyBytes_AS_STRING(c->interpreter), interp_n) != 0)
        return Py_NewRef(MISS);
    pos += interp_n;
    if (flags & FLAG_LIBRARY) {
        Py_ssize_t ln = buf[pos];  /* pos < n: 4 CRC bytes at least follow the interpreter */
        if (ln > n - pos - 1)
            return Py_NewRef(MISS);
        for (i = pos + 1; i < pos + 1 + ln; i++)
            if (buf[i] >= 0x80)  /* not ASCII: the Python parse reports it */
                return Py_NewRef(MISS);
        pos += 1 + ln;
    }
    if (flags & FLAG_SOURCE) {
        uint64_t ln;
        if (n - pos < 4)
            return Py_NewRef(MISS);
        ln = le(buf + pos, 4);
        pos += 4;
        if (ln > (uint64_t)(n - pos))
            return Py_NewRef(MISS);
        source_at = pos;
        source_n = (Py_ssize_t)ln;
        pos += source_n;
    }
    if (n - pos < 4)
        return Py_NewRef(MISS);
    if (pos + 4 != last_code_header_n || memcmp(buf, last_code_header, pos + 4) != 0) {
        if (le(buf + pos, 4) != crc32(buf, (size_t)pos))
            return Py_NewRef(MISS);
        if (pos + 4 <= (Py_ssize_t)sizeof last_code_header) {
            memcpy(last_code_header, buf, pos + 4);
            last_code_header_n = pos + 4;
        }
    }
    pos += 4;
    if (payload_length != (uint64_t)(n - pos))
        return Py_NewRef(MISS);
    loader = code_loader(c, backend);
    if (loader == NULL)
        return NULL;
    if (loader == Py_None)
        return Py_NewRef(MISS);
    if (source_n > 0) {  /* its lines, for tracebacks: registered before the load, as loads does */
        PyObject *block = PyBytes_FromStringAndSize((const char *)buf + source_at, source_n), *done;
        if (block == NULL)
            return NULL;
        done = PyObject_CallOneArg(c->register_source, block);
        Py_DECREF(block);
        if (done == NULL)
            return NULL;
        Py_DECREF(done);
    }
    if (n - pos < SMALL_PAYLOAD) {
        payload = PyBytes_FromStringAndSize((const char *)buf + pos, n - pos);
    }
    else {  /* a view, not a copy, of a large payload (1k lambdas); it holds a reference to data */
        PyObject *view = PyMemoryView_FromObject(data);
        if (view == NULL)
            return NULL;
        payload = PySequence_GetSlice(view, pos, n);
        Py_DECREF(view);
    }
    if (payload == NULL)
        return NULL;
    result = PyObject_CallOneArg(PyTuple_GET_ITEM(loader, 0), payload);
    Py_DECREF(payload);
    then = PyTuple_GET_ITEM(loader, 1);
    if (result != NULL && then != Py_None)
        Py_SETREF(result, PyObject_CallOneArg(then, result));
    if (result == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyObject *type, *value, *traceback, *raised;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        if (traceback != NULL)
            PyException_SetTraceback(value, traceback);
        raised = PyObject_CallFunctionObjArgs(c->on_error, value, data, NULL);  /* raises: NULL */
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        if (raised != NULL) {
            Py_DECREF(raised);
            PyErr_SetString(PyExc_SystemError, "anypickle: on_error returned instead of raising");
        }
    }
    return result;
}

/* FastLoads: anypickle.loads itself when the extension is built. A call with one bytes argument
 * and at most the keyword safe= goes through load_envelope without entering Python (a Python
 * frame, its argument checks and this call cost more than pickle.loads's own work on a small
 * payload); every other call, and every MISS, goes to the Python loads (slow), which takes the
 * same fast path first and so behaves identically. pickle.loads's errors go to on_error, a Python
 * function that raises the anypickle error for them. Given code (see load_code_envelope), unsigned
 * function payloads of marshal and cloudpickle take a fast path too (without safe). Attributes live in __dict__, which
 * functools.update_wrapper fills (__wrapped__, __doc__, __name__, ...), so help() and
 * inspect.signature() show the Python loads. */
typedef struct {
    PyObject_HEAD
    PyObject *slow;
    PyObject *on_error;
    PyObject *dict;
    vectorcallfunc vectorcall;
    int has_code;   /* code set: function payloads take their fast path too */
    int safe;       /* safe=True unless a call says otherwise (Decoder(safe=True).decode) */
    CodePath code;
} FastLoads;

static PyObject *
fastloads_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    FastLoads *self = (FastLoads *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    int safe = self->safe;

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
        if (result == MISS && self->has_code && !safe) {
            Py_DECREF(result);
            result = load_code_envelope(&self->code, args[0]);  /* MISS: the Python loads, below */
            if (result == NULL)
                return NULL;  /* the anypickle error on_error raised, or KeyboardInterrupt and the like */
        }
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
    PyObject *slow, *on_error, *code = Py_None, *safe = Py_False;
    FastLoads *self;
    int safe_flag;

    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "FastLoads() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "FastLoads", 2, 4, &slow, &on_error, &code, &safe))
        return NULL;
    if ((safe_flag = PyObject_IsTrue(safe)) < 0)
        return NULL;
    if (!PyCallable_Check(slow) || !PyCallable_Check(on_error)) {
        PyErr_SetString(PyExc_TypeError, "FastLoads(slow, on_error) takes two callables");
        return NULL;
    }
    if (code != Py_None && !(PyTuple_CheckExact(code) && PyTuple_GET_SIZE(code) == 4
                             && PyBytes_CheckExact(PyTuple_GET_ITEM(code, 0))
                             && PyCallable_Check(PyTuple_GET_ITEM(code, 1))
                             && PyCallable_Check(PyTuple_GET_ITEM(code, 2))
                             && PyCallable_Check(PyTuple_GET_ITEM(code, 3)))) {
        PyErr_SetString(PyExc_TypeError,
                        "FastLoads: code must be None or (interpreter bytes, loader_for, register, on_error)");
        return NULL;
    }
    self = (FastLoads *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->slow = Py_NewRef(slow);
    self->on_error = Py_NewRef(on_error);
    self->vectorcall = fastloads_vectorcall;
    self->safe = safe_flag;
    if (code != Py_None) {
        self->has_code = 1;
        self->code.interpreter = Py_NewRef(PyTuple_GET_ITEM(code, 0));
        self->code.loader_for = Py_NewRef(PyTuple_GET_ITEM(code, 1));
        self->code.register_source = Py_NewRef(PyTuple_GET_ITEM(code, 2));
        self->code.on_error = Py_NewRef(PyTuple_GET_ITEM(code, 3));
    }
    return (PyObject *)self;
}

static int
fastloads_traverse(FastLoads *self, visitproc visit, void *arg)
{
    Py_VISIT(self->slow);
    Py_VISIT(self->on_error);
    Py_VISIT(self->dict);
    return code_path_traverse(&self->code, visit, arg);
}

static int
fastloads_clear(FastLoads *self)
{
    Py_CLEAR(self->slow);
    Py_CLEAR(self->on_error);
    Py_CLEAR(self->dict);
    self->has_code = 0;
    code_path_clear(&self->code);
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
    .tp_name = "anypickle.safe._opwalk.FastLoads",
    .tp_basicsize = sizeof(FastLoads),
    .tp_dealloc = (destructor)fastloads_dealloc,
    .tp_vectorcall_offset = offsetof(FastLoads, vectorcall),
    .tp_repr = fastloads_repr,
    .tp_call = PyVectorcall_Call,
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "FastLoads(slow, on_error, code=None, safe=False): loads with a C fast path for plain-data\n"
              "envelopes and, given code=(interpreter, loader_for, register, on_error), for unsigned function\n"
              "payloads; safe=True makes safe=True the default of its calls (slow must then default to it too).",
    .tp_traverse = (traverseproc)fastloads_traverse,
    .tp_clear = (inquiry)fastloads_clear,
    .tp_methods = fastloads_methods,
    .tp_getset = fastloads_getset,
    .tp_dictoffset = offsetof(FastLoads, dict),
    .tp_new = fastloads_new,
};

PyDoc_STRVAR(plain_data_doc,
"plain_data(data, max_depth=1000, max_copy=50000000, max_int_bytes=1786, max_hashed_keys=-1, /)\n--\n\n"
"True when memo_check(data) passes and the stream has no opcode that imports, calls or builds\n"
"anything (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*, PERSID, BINPERSID, REDUCE, BUILD, NEWOBJ*,\n"
"out-of-band buffers): then only builtin containers and scalars can come out of it.");

PyDoc_STRVAR(memo_check_doc,
"memo_check(data, max_depth=1000, max_copy=50000000, max_int_bytes=1786, max_hashed_keys=-1, /)\n--\n\n"
"Walk a pickle stream's opcodes without executing anything. Return None when every memo index is\n"
"the next free one, no opcode straddles a frame's end and the stream ends with its first STOP;\n"
"False when it is sound but holds an integer literal longer than max_int_bytes; (position,\n"
"message) for the first problem; (position, message, limit name, measured) when the nesting\n"
"depth, the items copied by constructor calls, or the dict keys and set elements whose hash is\n"
"not randomized exceed max_depth, max_copy or max_hashed_keys (-1: no limit).");

static PyMethodDef methods[] = {
    {"memo_check", (PyCFunction)(void (*)(void))memo_check, METH_FASTCALL, memo_check_doc},
    {"plain_data", (PyCFunction)(void (*)(void))plain_data, METH_FASTCALL, plain_data_doc},
    {"safe_plan", (PyCFunction)(void (*)(void))safe_plan, METH_FASTCALL, safe_plan_doc},
    {"safe_fast", (PyCFunction)(void (*)(void))safe_fast, METH_FASTCALL, safe_fast_doc},
    {"configure_fast", (PyCFunction)(void (*)(void))configure_fast, METH_FASTCALL, configure_fast_doc},
    {"load_pickle_envelope", (PyCFunction)(void (*)(void))load_pickle_envelope, METH_FASTCALL,
     load_pickle_envelope_doc},
    {NULL, NULL, 0, NULL},
};

int planload_init(PyObject *module, PyObject *miss);  /* _planload.c: the planned load's hooks */

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "anypickle.safe._opwalk",
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
    {
        PyObject *copyreg = PyImport_ImportModule("copyreg");
        if (copyreg == NULL)
            return NULL;
        inverted_registry = PyObject_GetAttrString(copyreg, "_inverted_registry");
        extension_cache = PyObject_GetAttrString(copyreg, "_extension_cache");
        Py_DECREF(copyreg);
        if (inverted_registry == NULL || extension_cache == NULL)
            return NULL;
        if (!PyDict_Check(inverted_registry) || !PyDict_Check(extension_cache)) {
            PyErr_SetString(PyExc_ImportError, "copyreg's extension registry is not a dict");
            return NULL;
        }
    }
    MISS = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    if (MISS == NULL)
        return NULL;
    if (PyType_Ready(&FastLoadsType) < 0)
        return NULL;
    module = PyModule_Create(&moduledef);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "FastLoads", (PyObject *)&FastLoadsType) < 0 || planload_init(module, MISS) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    prefix = PyBytes_FromStringAndSize((const char *)ENVELOPE_PREFIX, sizeof ENVELOPE_PREFIX);
    if (PyModule_AddObjectRef(module, "MISS", MISS) < 0 || prefix == NULL
        || PyModule_AddIntConstant(module, "PLAN_FIRST", PLAN_FIRST) < 0
        || PyModule_AddIntConstant(module, "PLAN_MAX", PLAN_MAX) < 0
        || PyModule_AddObject(module, "ENVELOPE_PREFIX", prefix) < 0) {
        Py_XDECREF(prefix);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
