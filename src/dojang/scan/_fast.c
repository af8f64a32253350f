/* The scan's compiled inner loops (optional: without a C compiler dojang falls back to numpy and
 * the Python pre-tokenizer, with the same results).
 *
 *   bpe_build(byte_ids, merges) -> a byte-level BPE merge table (capsule) for pretokenize_encode.
 *
 *   cache_new(limit) -> an empty piece cache (capsule) that holds at most ``limit`` pieces.
 *
 *   pretokenize_encode(texts, classes, cache, miss, bpe) -> (ids, lengths)
 *       GPT-2 byte-level pre-split of each text (the pattern in _tokenize.py, decided per code
 *       point by the class table ``classes``: 0 other, 1 letter, 2 number, 3 white space), each
 *       piece's ids looked up in ``cache``; a piece the cache does not hold is merged by ``bpe``
 *       (when not None, for pieces up to BPE_LONGEST code points) or by ``miss(piece)``, which
 *       returns its ids as bytes of int64; either way it is cached (the cache is emptied first
 *       when it is full).
 *       Returns the concatenated ids (bytes of int64) and one length per text (bytes of int64).
 *
 *   score(ids, offsets, configs, totals, counts)
 *       Whole-document scores of every document under every (key, configuration), as
 *       dojang.text._scoring does them (spec docs/spec/text.md, sections 2-4): the keyed hash,
 *       lefthash/minhash/selfhash seeds, first occurrences of (seed, token) pairs per document,
 *       and the kgw / synthid / gumbel token scores, summed in token order.
 *       ids: int64[N]; offsets: int64[D + 1]; configs: sequence of tuples
 *       (context_width, seeding, kind, param, k0, k1, k2) with seeding 0 lefthash, 1 minhash,
 *       2 selfhash and kind 0 kgw (param: green threshold), 1 synthid (param: layers),
 *       2 gumbel; totals: float64[C * D] and counts: int64[C * D] are written, row c = config c.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- keyed hash (docs/spec/text.md section 2) ---------------------------------------------- */
static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x2C1B3C6Du;
    x ^= x >> 12;
    x *= 0x297A2D39u;
    return x ^ (x >> 15);
}


/* ---- byte-level BPE (merges by rank, lowest first, leftmost among equals) ------------------- */
typedef struct {
    int64_t byte_id[256];
    uint64_t *keys; /* (left << 32 | right) + 1; 0 marks an empty slot */
    int64_t *rank, *merged;
    size_t mask;
    int shift; /* 64 - log2(slots): a slot is the top bits of a multiplicative hash */
} Bpe;

static void bpe_free(PyObject *capsule) {
    Bpe *m = (Bpe *)PyCapsule_GetPointer(capsule, "dojang.bpe");
    if (!m) return;
    free(m->keys);
    free(m->rank);
    free(m->merged);
    free(m);
}

static inline size_t slot_of(uint64_t key, int shift) { return (size_t)((key * 0x9E3779B97F4A7C15ull) >> shift); }

/* bpe_build(byte_ids, merges) -> capsule. byte_ids: int64[256], the id of each byte's symbol;
 * (-1: the vocabulary has none); merges: int64[3 * M], (left id, right id, merged id) in rank order. */
static PyObject *bpe_build(PyObject *self, PyObject *args) {
    PyObject *bytes_o, *merges_o;
    if (!PyArg_ParseTuple(args, "SS", &bytes_o, &merges_o)) return NULL;
    if (PyBytes_GET_SIZE(bytes_o) != 256 * 8 || PyBytes_GET_SIZE(merges_o) % 24) {
        PyErr_SetString(PyExc_ValueError, "byte_ids must hold 256 int64 and merges whole int64 triples");
        return NULL;
    }
    Py_ssize_t nm = PyBytes_GET_SIZE(merges_o) / 24;
    const int64_t *mg = (const int64_t *)PyBytes_AS_STRING(merges_o);
    Bpe *m = (Bpe *)calloc(1, sizeof(Bpe));
    if (!m) return PyErr_NoMemory();
    memcpy(m->byte_id, PyBytes_AS_STRING(bytes_o), sizeof(m->byte_id));
    size_t cap = 1024;
    m->shift = 54;
    while (cap < 2 * (size_t)nm) {
        cap *= 2;
        m->shift--;
    }
    m->mask = cap - 1;
    m->keys = (uint64_t *)calloc(cap, sizeof(uint64_t));
    m->rank = (int64_t *)malloc(cap * sizeof(int64_t));
    m->merged = (int64_t *)malloc(cap * sizeof(int64_t));
    if (!m->keys || !m->rank || !m->merged) {
        free(m->keys);
        free(m->rank);
        free(m->merged);
        free(m);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t r = 0; r < nm; r++) {
        int64_t a = mg[3 * r], b = mg[3 * r + 1];
        if (a < 0 || b < 0 || a > 0xFFFFFFFFll || b > 0xFFFFFFFFll) continue;
        uint64_t key = (((uint64_t)a << 32) | (uint64_t)b) + 1;
        size_t i = slot_of(key, m->shift);
        while (m->keys[i] && m->keys[i] != key) i = (i + 1) & m->mask;
        if (m->keys[i]) continue; /* a repeated merge keeps its first (lowest) rank */
        m->keys[i] = key;
        m->rank[i] = r;
        m->merged[i] = mg[3 * r + 2];
    }
    PyObject *cap_o = PyCapsule_New(m, "dojang.bpe", bpe_free);
    if (!cap_o) {
        free(m->keys);
        free(m->rank);
        free(m->merged);
        free(m);
    }
    return cap_o;
}

static inline int bpe_lookup(const Bpe *m, int64_t a, int64_t b, int64_t *rank, int64_t *merged) {
    uint64_t key = (((uint64_t)a << 32) | (uint64_t)b) + 1;
    size_t i = slot_of(key, m->shift);
    while (m->keys[i]) {
        if (m->keys[i] == key) {
            *rank = m->rank[i];
            *merged = m->merged[i];
            return 1;
        }
        i = (i + 1) & m->mask;
    }
    return 0;
}

/* The ids of one piece (UTF-8 bytes ``s`` of length ``n``) as a new bytes object of int64. */
static PyObject *bpe_piece(const Bpe *m, const unsigned char *s, Py_ssize_t n) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 8);
    if (!out) return NULL;
    int64_t *sym = (int64_t *)PyBytes_AS_STRING(out);
    Py_ssize_t len = 0;
    for (Py_ssize_t i = 0; i < n; i++) /* a byte without a symbol is dropped, as the Rust BPE does */
        if (m->byte_id[s[i]] >= 0) sym[len++] = m->byte_id[s[i]];
    for (;;) {
        int64_t best = -1, best_merged = 0, r, mg;
        Py_ssize_t at = -1;
        for (Py_ssize_t i = 0; i + 1 < len; i++) {
            if (bpe_lookup(m, sym[i], sym[i + 1], &r, &mg) && (best < 0 || r < best)) {
                best = r;
                best_merged = mg;
                at = i;
            }
        }
        if (at < 0) break;
        sym[at] = best_merged;
        memmove(sym + at + 1, sym + at + 2, (size_t)(len - at - 2) * 8);
        len--;
    }
    if (len != n && _PyBytes_Resize(&out, len * 8) < 0) return NULL;
    return out;
}

/* ---- pre-tokenizer ------------------------------------------------------------------------- */
enum { C_OTHER = 0, C_LETTER = 1, C_NUMBER = 2, C_SPACE = 3 };

typedef struct {
    int64_t *data;
    Py_ssize_t size, cap;
} Buf;

/* Make room for ``need`` items of ``item`` bytes in ``*data`` (doubling ``*cap``). */
static int grow_arena(void **data, size_t *cap, size_t need, size_t item) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 65536;
    while (n < need) n *= 2;
    void *d = realloc(*data, n * item);
    if (!d) return -1;
    *data = d;
    *cap = n;
    return 0;
}

static int buf_reserve(Buf *b, Py_ssize_t extra) {
    size_t cap = (size_t)b->cap;
    if (grow_arena((void **)&b->data, &cap, (size_t)(b->size + extra), sizeof(int64_t)) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    b->cap = (Py_ssize_t)cap;
    return 0;
}

#define BPE_LONGEST 256    /* longer pieces (quadratic merging) go to ``miss`` */
#define CACHE_LONGEST 1024 /* longer pieces are not cached */

/* The piece cache: code points of a piece -> its ids. Open addressing over entries that point
 * into two arenas; emptied whole when it holds ``limit`` pieces. */
typedef struct {
    uint64_t hash; /* 0 marks an empty slot */
    uint32_t cp_off, cp_len, id_off, id_len;
} Entry;

typedef struct {
    Entry *tab;
    size_t cap, used, limit;
    int shift;
    uint32_t *cps;
    size_t ncps, cps_cap;
    int64_t *ids;
    size_t nids, ids_cap;
} PieceCache;

static void cache_free(PyObject *capsule) {
    PieceCache *c = (PieceCache *)PyCapsule_GetPointer(capsule, "dojang.piece_cache");
    if (!c) return;
    free(c->tab);
    free(c->cps);
    free(c->ids);
    free(c);
}

static int cache_alloc_table(PieceCache *c, size_t cap, int shift) {
    Entry *tab = (Entry *)calloc(cap, sizeof(Entry));
    if (!tab) return -1;
    free(c->tab);
    c->tab = tab;
    c->cap = cap;
    c->shift = shift;
    c->used = 0;
    return 0;
}

/* cache_new(limit) -> an empty piece cache (capsule) */
static PyObject *cache_new(PyObject *self, PyObject *args) {
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "n", &limit)) return NULL;
    if (limit < 1) {
        PyErr_SetString(PyExc_ValueError, "the cache limit must be positive");
        return NULL;
    }
    PieceCache *c = (PieceCache *)calloc(1, sizeof(PieceCache));
    if (!c || cache_alloc_table(c, 4096, 52) < 0) {
        free(c);
        return PyErr_NoMemory();
    }
    c->limit = (size_t)limit;
    PyObject *cap_o = PyCapsule_New(c, "dojang.piece_cache", cache_free);
    if (!cap_o) {
        free(c->tab);
        free(c);
    }
    return cap_o;
}

static inline size_t entry_slot(const PieceCache *c, uint64_t h) { return (size_t)((h * 0x9E3779B97F4A7C15ull) >> c->shift); }

static int cache_grow(PieceCache *c) { /* double the table, re-inserting every entry */
    Entry *old = c->tab;
    size_t old_cap = c->cap;
    c->tab = NULL;
    if (cache_alloc_table(c, old_cap * 2, c->shift - 1) < 0) {
        c->tab = old;
        return -1;
    }
    for (size_t k = 0; k < old_cap; k++) {
        if (!old[k].hash) continue;
        size_t i = entry_slot(c, old[k].hash);
        while (c->tab[i].hash) i = (i + 1) & (c->cap - 1);
        c->tab[i] = old[k];
        c->used++;
    }
    free(old);
    return 0;
}

typedef struct {
    PieceCache *cache;
    PyObject *miss;
    const Bpe *bpe; /* or NULL: every miss goes to ``miss`` */
} Lookup;

/* Append the ids of text[a:e] (code points ``kind``/``data``) to ``b``. */
static int append_piece(Buf *b, PyObject *text, int kind, const void *data, Py_ssize_t a, Py_ssize_t e, const Lookup *lk) {
    PieceCache *c = lk->cache;
    const Py_ssize_t n = e - a;
    uint64_t h = 0xCBF29CE484222325ull;
    for (Py_ssize_t j = a; j < e; j++) h = (h ^ (uint64_t)PyUnicode_READ(kind, data, j)) * 0x100000001B3ull;
    h ^= h >> 29;
    if (!h) h = 1;
    size_t i = entry_slot(c, h);
    for (;; i = (i + 1) & (c->cap - 1)) {
        const Entry *en = &c->tab[i];
        if (!en->hash) break;
        if (en->hash != h || en->cp_len != (uint32_t)n) continue;
        const uint32_t *cp = c->cps + en->cp_off;
        Py_ssize_t j = 0;
        while (j < n && cp[j] == (uint32_t)PyUnicode_READ(kind, data, a + j)) j++;
        if (j < n) continue;
        if (buf_reserve(b, en->id_len) < 0) return -1;
        memcpy(b->data + b->size, c->ids + en->id_off, (size_t)en->id_len * 8);
        b->size += en->id_len;
        return 0;
    }
    /* a new piece: merge it here, or ask ``miss`` */
    PyObject *piece = PyUnicode_Substring(text, a, e);
    if (!piece) return -1;
    PyObject *ids = NULL;
    Py_ssize_t nbytes = 0;
    const char *utf8 = NULL;
    if (lk->bpe && n <= BPE_LONGEST) {
        utf8 = PyUnicode_AsUTF8AndSize(piece, &nbytes);
        if (!utf8) PyErr_Clear(); /* a lone surrogate: let ``miss`` say so */
    }
    ids = utf8 ? bpe_piece(lk->bpe, (const unsigned char *)utf8, nbytes) : PyObject_CallOneArg(lk->miss, piece);
    Py_DECREF(piece);
    if (!ids) return -1;
    if (!PyBytes_Check(ids) || PyBytes_GET_SIZE(ids) % 8) {
        Py_DECREF(ids);
        PyErr_SetString(PyExc_TypeError, "miss() must return bytes of int64 ids");
        return -1;
    }
    const Py_ssize_t k = PyBytes_GET_SIZE(ids) / 8;
    const int64_t *src = (const int64_t *)PyBytes_AS_STRING(ids);
    if (buf_reserve(b, k) < 0) {
        Py_DECREF(ids);
        return -1;
    }
    memcpy(b->data + b->size, src, (size_t)k * 8);
    b->size += k;
    /* remember it (not a very long piece: rare, and it would fill the arena) */
    if (n > CACHE_LONGEST) {
        Py_DECREF(ids);
        return 0;
    }
    if (c->used >= c->limit) { /* full: start again */
        memset(c->tab, 0, c->cap * sizeof(Entry));
        c->used = c->ncps = c->nids = 0;
    }
    if ((c->used + 1) * 2 > c->cap && cache_grow(c) < 0) {
        Py_DECREF(ids);
        PyErr_NoMemory();
        return -1;
    }
    if (grow_arena((void **)&c->cps, &c->cps_cap, c->ncps + (size_t)n, sizeof(uint32_t)) < 0 ||
        grow_arena((void **)&c->ids, &c->ids_cap, c->nids + (size_t)k, sizeof(int64_t)) < 0) {
        Py_DECREF(ids);
        PyErr_NoMemory();
        return -1;
    }
    Entry en = {h, (uint32_t)c->ncps, (uint32_t)n, (uint32_t)c->nids, (uint32_t)k};
    for (Py_ssize_t j = 0; j < n; j++) c->cps[c->ncps + j] = (uint32_t)PyUnicode_READ(kind, data, a + j);
    memcpy(c->ids + c->nids, src, (size_t)k * 8);
    c->ncps += (size_t)n;
    c->nids += (size_t)k;
    i = entry_slot(c, h);
    while (c->tab[i].hash) i = (i + 1) & (c->cap - 1);
    c->tab[i] = en;
    c->used++;
    Py_DECREF(ids);
    return 0;
}

static int encode_one(Buf *b, PyObject *text, const unsigned char *cls, const Lookup *lk) {
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
#define CH(j) ((Py_UCS4)PyUnicode_READ(kind, data, (j)))
#define CLS(j) (cls[CH(j)])
    Py_ssize_t i = 0;
    while (i < n) {
        Py_UCS4 c = CH(i);
        Py_ssize_t e = -1;
        if (c == '\'' && i + 1 < n) { /* 's 't 're 've 'm 'll 'd */
            Py_UCS4 c1 = CH(i + 1);
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                e = i + 2;
            } else if (i + 2 < n) {
                Py_UCS4 c2 = CH(i + 2);
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) e = i + 3;
            }
        }
        if (e < 0) {
            unsigned char k = cls[c];
            Py_ssize_t s = i;
            if (c == ' ' && i + 1 < n && CLS(i + 1) != C_SPACE) { /* ' ?X+' with the space */
                s = i + 1;
                k = CLS(i + 1);
            }
            if (k != C_SPACE) { /* a run of letters, of numbers or of other characters */
                e = s + 1;
                while (e < n && CLS(e) == k) e++;
            } else { /* white space: \s+(?!\S) | \s+ */
                e = i + 1;
                while (e < n && CLS(e) == C_SPACE) e++;
                if (e < n && e - i >= 2) e -= 1;
            }
        }
        if (append_piece(b, text, kind, data, i, e, lk) < 0) return -1;
        i = e;
    }
#undef CH
#undef CLS
    return 0;
}

static PyObject *pretokenize_encode(PyObject *self, PyObject *args) {
    PyObject *texts, *classes, *cache_o, *miss, *bpe_o;
    Lookup lk = {0};
    if (!PyArg_ParseTuple(args, "OSOOO", &texts, &classes, &cache_o, &miss, &bpe_o)) return NULL;
    lk.cache = (PieceCache *)PyCapsule_GetPointer(cache_o, "dojang.piece_cache");
    if (!lk.cache) return NULL;
    lk.miss = miss;
    if (bpe_o != Py_None) {
        lk.bpe = (const Bpe *)PyCapsule_GetPointer(bpe_o, "dojang.bpe");
        if (!lk.bpe) return NULL;
    }
    if (PyBytes_GET_SIZE(classes) != 0x110000) {
        PyErr_SetString(PyExc_ValueError, "the class table must hold 0x110000 entries");
        return NULL;
    }
    const unsigned char *cls = (const unsigned char *)PyBytes_AS_STRING(classes);
    PyObject *seq = PySequence_Fast(texts, "texts must be a sequence of str");
    if (!seq) return NULL;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    Buf b = {0};
    PyObject *lengths = PyBytes_FromStringAndSize(NULL, m * 8);
    if (!lengths) goto fail;
    int64_t *len = (int64_t *)PyBytes_AS_STRING(lengths);
    for (Py_ssize_t t = 0; t < m; t++) {
        PyObject *text = PySequence_Fast_GET_ITEM(seq, t);
        if (!PyUnicode_Check(text)) {
            PyErr_SetString(PyExc_TypeError, "texts must be str");
            goto fail;
        }
        Py_ssize_t before = b.size;
        if (encode_one(&b, text, cls, &lk) < 0) goto fail;
        len[t] = (int64_t)(b.size - before);
    }
    PyObject *ids = PyBytes_FromStringAndSize((const char *)b.data, b.size * 8);
    free(b.data);
    Py_DECREF(seq);
    if (!ids) {
        Py_DECREF(lengths);
        return NULL;
    }
    return Py_BuildValue("(NN)", ids, lengths);
fail:
    free(b.data);
    Py_XDECREF(lengths);
    Py_DECREF(seq);
    return NULL;
}

/* ---- whole-document scores ----------------------------------------------------------------- */
typedef struct {
    long h, seeding, kind;
    unsigned long long param;
    uint32_t k0, k1, k2;
} Config;

typedef struct { /* open-addressing set of (seed, token) pairs, cleared by a generation stamp */
    uint64_t *keys;
    uint32_t *stamp;
    size_t cap;
    int shift; /* 64 - log2(cap) */
    uint32_t gen;
} PairSet;

static int set_prepare(PairSet *s, size_t n) {
    size_t cap = 64;
    int shift = 58;
    while (cap < 2 * n) {
        cap *= 2;
        shift--;
    }
    if (cap > s->cap) {
        free(s->keys);
        free(s->stamp);
        s->keys = (uint64_t *)malloc(cap * sizeof(uint64_t));
        s->stamp = (uint32_t *)calloc(cap, sizeof(uint32_t));
        if (!s->keys || !s->stamp) {
            free(s->keys);
            free(s->stamp);
            s->keys = NULL;
            s->stamp = NULL;
            s->cap = 0;
            return -1;
        }
        s->cap = cap;
        s->gen = 0;
    }
    s->shift = shift;
    if (++s->gen == 0) { /* wrapped: clear once */
        memset(s->stamp, 0, s->cap * sizeof(uint32_t));
        s->gen = 1;
    }
    return 0;
}

/* 1 when the pair is new (and adds it), 0 when seen before in this document */
static inline int set_add(PairSet *restrict s, uint64_t key, size_t mask) {
    const uint32_t gen = s->gen;
    uint32_t *restrict stamp = s->stamp;
    uint64_t *restrict keys = s->keys;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> s->shift); /* the product's top bits */
    while (stamp[i] == gen) {
        if (keys[i] == key) return 0;
        i = (i + 1) & mask;
    }
    stamp[i] = gen;
    keys[i] = key;
    return 1;
}

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t itemsize, const char *name) {
    if (PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s must hold %zd-byte items", name, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Seeds and values of every position p >= h of one document, in loops the compiler vectorises
 * (with AVX2 where the processor has it: gcc builds both and picks at load time).
 * ctx, seeds, vals: len entries each. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
static void hash_pass(const int64_t *restrict t, Py_ssize_t len, const Config *cf, uint32_t *restrict ctx,
                      uint32_t *restrict seeds, uint32_t *restrict vals) {
    const long h = cf->h;
    const uint32_t k0 = cf->k0, k1 = cf->k1, k2 = cf->k2;
    for (Py_ssize_t j = 0; j < len; j++) ctx[j] = mix32((uint32_t)t[j] ^ k0);
    if (cf->seeding == 0) { /* lefthash: ordered fold of the context, oldest first */
        for (Py_ssize_t p = h; p < len; p++) seeds[p] = mix32(ctx[p - h] ^ k1);
        for (long j = 1; j < h; j++)
            for (Py_ssize_t p = h; p < len; p++) seeds[p] = mix32(seeds[p] ^ ctx[p - h + j]);
    } else { /* minhash, selfhash: the smallest context hash (with the token's own for selfhash) */
        for (Py_ssize_t p = h; p < len; p++) seeds[p] = ctx[p - h];
        for (long j = 1; j < h; j++)
            for (Py_ssize_t p = h; p < len; p++) seeds[p] = ctx[p - h + j] < seeds[p] ? ctx[p - h + j] : seeds[p];
        if (cf->seeding == 2)
            for (Py_ssize_t p = h; p < len; p++) seeds[p] = ctx[p] < seeds[p] ? ctx[p] : seeds[p];
    }
    for (Py_ssize_t p = h; p < len; p++) vals[p] = mix32(seeds[p] ^ mix32((uint32_t)t[p] ^ k2));
}

static PyObject *score(PyObject *self, PyObject *args) {
    PyObject *ids_o, *off_o, *cfg_o, *tot_o, *cnt_o;
    if (!PyArg_ParseTuple(args, "OOOOO", &ids_o, &off_o, &cfg_o, &tot_o, &cnt_o)) return NULL;
    Py_buffer ids_b = {0}, off_b = {0}, tot_b = {0}, cnt_b = {0};
    Config *cfgs = NULL;
    uint32_t *ctx = NULL;
    PairSet set = {0};
    PyObject *result = NULL;
    if (get_buffer(ids_o, &ids_b, 0, 8, "ids") < 0) return NULL;
    if (get_buffer(off_o, &off_b, 0, 8, "offsets") < 0) goto done;
    if (get_buffer(tot_o, &tot_b, 1, 8, "totals") < 0) goto done;
    if (get_buffer(cnt_o, &cnt_b, 1, 8, "counts") < 0) goto done;
    PyObject *seq = PySequence_Fast(cfg_o, "configs must be a sequence");
    if (!seq) goto done;
    Py_ssize_t nc = PySequence_Fast_GET_SIZE(seq);
    cfgs = (Config *)calloc(nc ? nc : 1, sizeof(Config));
    for (Py_ssize_t c = 0; c < nc && cfgs; c++) {
        unsigned long k0, k1, k2;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, c), "lllKkkk", &cfgs[c].h, &cfgs[c].seeding, &cfgs[c].kind,
                              &cfgs[c].param, &k0, &k1, &k2)) {
            Py_DECREF(seq);
            goto done;
        }
        if (cfgs[c].h < 1 || cfgs[c].seeding < 0 || cfgs[c].seeding > 2 || cfgs[c].kind < 0 || cfgs[c].kind > 2) {
            PyErr_SetString(PyExc_ValueError, "bad scoring configuration");
            Py_DECREF(seq);
            goto done;
        }
        cfgs[c].k0 = (uint32_t)k0;
        cfgs[c].k1 = (uint32_t)k1;
        cfgs[c].k2 = (uint32_t)k2;
    }
    Py_DECREF(seq);
    if (!cfgs) {
        PyErr_NoMemory();
        goto done;
    }
    const int64_t *ids = (const int64_t *)ids_b.buf;
    const int64_t *off = (const int64_t *)off_b.buf;
    Py_ssize_t nd = off_b.len / 8 - 1, n = ids_b.len / 8;
    double *totals = (double *)tot_b.buf;
    int64_t *counts = (int64_t *)cnt_b.buf;
    if (nd < 0 || tot_b.len / 8 < nc * nd || cnt_b.len / 8 < nc * nd) {
        PyErr_SetString(PyExc_ValueError, "offsets, totals and counts do not fit together");
        goto done;
    }
    for (Py_ssize_t d = 0; d < nd; d++) {
        if (off[d] < 0 || off[d] > off[d + 1] || off[d + 1] > n) {
            PyErr_SetString(PyExc_ValueError, "offsets must rise within the ids");
            goto done;
        }
    }
    Py_ssize_t longest = 0;
    for (Py_ssize_t d = 0; d < nd; d++)
        if (off[d + 1] - off[d] > longest) longest = off[d + 1] - off[d];
    ctx = (uint32_t *)malloc((size_t)(longest ? longest : 1) * 3 * sizeof(uint32_t));
    uint32_t *seeds = ctx + (longest ? longest : 1), *vals = seeds + (longest ? longest : 1);
    if (!ctx) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t c = 0; c < nc; c++) {
        const Config *cf = &cfgs[c];
        const long h = cf->h;
        for (Py_ssize_t d = 0; d < nd; d++) {
            const int64_t *t = ids + off[d];
            const Py_ssize_t len = off[d + 1] - off[d];
            double total = 0.0;
            int64_t count = 0;
            if (len > h) {
                if (set_prepare(&set, (size_t)(len - h)) < 0) { /* out of memory: reported below */
                    totals[c * nd + d] = 0.0;
                    counts[c * nd + d] = -1;
                    continue;
                }
                hash_pass(t, len, cf, ctx, seeds, vals);
                const size_t mask = set.cap - 1;
                for (Py_ssize_t p = h; p < len; p++) {
                    const uint64_t pair = ((uint64_t)seeds[p] << 32) | ((uint64_t)t[p] & 0xFFFFFFFFull);
                    if (!set_add(&set, pair, mask)) continue; /* a repeated (seed, token) pair counts once */
                    const uint32_t u = vals[p];
                    double sc;
                    if (cf->kind == 0) {
                        sc = (unsigned long long)u < cf->param ? 1.0 : 0.0;
                    } else if (cf->kind == 1) {
                        uint32_t bits = cf->param >= 32 ? u : (u & (uint32_t)((1ull << cf->param) - 1));
                        sc = (double)__builtin_popcount(bits);
                    } else {
                        sc = -log((4294967296.0 - (double)u) / 4294967296.0);
                    }
                    total += sc;
                    count++;
                }
            }
            totals[c * nd + d] = total;
            counts[c * nd + d] = count;
        }
    }
    Py_END_ALLOW_THREADS;
    for (Py_ssize_t k = 0; k < nc * nd; k++) {
        if (counts[k] < 0) {
            PyErr_NoMemory();
            goto done;
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    free(cfgs);
    free(ctx);
    free(set.keys);
    free(set.stamp);
    if (ids_b.obj) PyBuffer_Release(&ids_b);
    if (off_b.obj) PyBuffer_Release(&off_b);
    if (tot_b.obj) PyBuffer_Release(&tot_b);
    if (cnt_b.obj) PyBuffer_Release(&cnt_b);
    return result;
}

static PyMethodDef methods[] = {
    {"cache_new", cache_new, METH_VARARGS, "An empty piece cache for pretokenize_encode."},
    {"bpe_build", bpe_build, METH_VARARGS, "A byte-level BPE merge table for pretokenize_encode."},
    {"pretokenize_encode", pretokenize_encode, METH_VARARGS, "GPT-2 pre-split + cached BPE ids of many texts."},
    {"score", score, METH_VARARGS, "Whole-document scores of many documents under many configurations."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fast", "dojang's compiled scan loops.", -1, methods};

PyMODINIT_FUNC PyInit__fast(void) { return PyModule_Create(&module); }
