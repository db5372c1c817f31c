/* The encrypting half of the session ticket key callback, in C.
 *
 * Every full TLS 1.3 handshake issues two tickets, and OpenSSL asks the ticket key callback
 * for a key for each. Through ctypes that is a Python call per ticket (the GIL taken back,
 * arguments converted, three libcrypto calls through ctypes): ~36 us of a ~750 us handshake
 * (docs/benchmarks.md). Here the current key waits in C memory and a new ticket costs three
 * direct libcrypto calls.
 *
 * Python keeps every decision (gateway/tls/libssl_tickets.py): a ticket to decrypt, a key
 * outside its interval, a libcrypto failure and an empty slot all go to the Python callback
 * the slot was given, which also refreshes the slot's key. This file knows no policy, and no
 * OpenSSL header: the libcrypto functions are the ones Python's _ssl is linked to, handed in
 * as pointers (ramparts_tickets_bind), so both sides use one libcrypto.
 *
 * OpenSSL gives the callback no pointer of ours, and finds it through the context a
 * connection was accepted on: a slot is one context's state and has a callback of its own.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <time.h>

#define NAME_BYTES 16
#define HMAC_BYTES 32
#define AES_BYTES 32
#define IV_BYTES 16 /* AES-256-CBC */
#define SLOTS 8

/* OpenSSL 3's OSSL_PARAM, and the type codes used here */
typedef struct {
    const char *key;
    unsigned int data_type;
    void *data;
    size_t data_size;
    size_t return_size;
} ossl_param;
#define OSSL_PARAM_UTF8_STRING 4
#define OSSL_PARAM_OCTET_STRING 5
#define OSSL_PARAM_UNMODIFIED ((size_t)-1)

typedef int (*ticket_cb)(void *ssl, unsigned char *name, unsigned char *iv, void *cipher_ctx,
                         void *mac_ctx, int enc);

static struct {
    int (*rand_bytes)(unsigned char *buf, int num);
    int (*encrypt_init)(void *ctx, const void *cipher, void *engine, const unsigned char *key,
                        const unsigned char *iv);
    int (*mac_set_params)(void *ctx, const ossl_param *params);
    const void *aes_256_cbc;
} lib;

typedef struct {
    unsigned char name[NAME_BYTES], hmac[HMAC_BYTES], aes[AES_BYTES];
    ossl_param params[3];
    double start, end; /* wall-clock seconds during which it encrypts new tickets */
} ticket_key;

typedef struct {
    ticket_cb python; /* NULL: the slot is free */
    ticket_key keys[2];    /* written apart, then published by one store of `current` */
    int current;      /* -1: no key yet */
} slot_t;

static slot_t slots[SLOTS];
static char digest_name[] = "SHA256";

static double wall_clock(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now); /* Python's time.time() */
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static int ticket(slot_t *slot, void *ssl, unsigned char *name, unsigned char *iv,
                  void *cipher_ctx, void *mac_ctx, int enc) {
    int at = __atomic_load_n(&slot->current, __ATOMIC_ACQUIRE);
    if (enc && at >= 0) {
        const ticket_key *key = &slot->keys[at];
        double now = wall_clock();
        if (key->start <= now && now < key->end && lib.rand_bytes(iv, IV_BYTES) == 1 &&
            lib.mac_set_params(mac_ctx, key->params) == 1 &&
            lib.encrypt_init(cipher_ctx, lib.aes_256_cbc, NULL, key->aes, iv) == 1) {
            memcpy(name, key->name, NAME_BYTES);
            return 1;
        }
    }
    ticket_cb python = slot->python;
    return python != NULL ? python(ssl, name, iv, cipher_ctx, mac_ctx, enc) : 0;
}

#define SLOT_CALLBACK(i)                                                                    \
    static int ticket_##i(void *ssl, unsigned char *name, unsigned char *iv, void *cipher,  \
                          void *mac, int enc) {                                             \
        return ticket(&slots[i], ssl, name, iv, cipher, mac, enc);                          \
    }
SLOT_CALLBACK(0)
SLOT_CALLBACK(1)
SLOT_CALLBACK(2)
SLOT_CALLBACK(3)
SLOT_CALLBACK(4)
SLOT_CALLBACK(5)
SLOT_CALLBACK(6)
SLOT_CALLBACK(7)
static const ticket_cb callbacks[SLOTS] = {ticket_0, ticket_1, ticket_2, ticket_3,
                                           ticket_4, ticket_5, ticket_6, ticket_7};

/* The libcrypto functions, from the library Python's _ssl uses. */
void ramparts_tickets_bind(void *rand_bytes, void *encrypt_init, void *mac_set_params,
                           const void *aes_256_cbc) {
    lib.rand_bytes = (int (*)(unsigned char *, int))rand_bytes;
    lib.encrypt_init = (int (*)(void *, const void *, void *, const unsigned char *,
                                const unsigned char *))encrypt_init;
    lib.mac_set_params = (int (*)(void *, const ossl_param *))mac_set_params;
    lib.aes_256_cbc = aes_256_cbc;
}

/* A free slot for a context whose Python callback is `python`: its index, or -1 when all
 * are taken (the caller installs the Python callback itself). Called with the GIL held. */
int ramparts_tickets_acquire(void *python) {
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].python == NULL) {
            __atomic_store_n(&slots[i].current, -1, __ATOMIC_RELEASE);
            slots[i].python = (ticket_cb)python;
            return i;
        }
    }
    return -1;
}

void *ramparts_tickets_callback(int slot) { return (void *)callbacks[slot]; }

/* Once no context uses the slot's callback any more. */
void ramparts_tickets_release(int slot) {
    __atomic_store_n(&slots[slot].current, -1, __ATOMIC_RELEASE);
    slots[slot].python = NULL;
    memset(slots[slot].keys, 0, sizeof slots[slot].keys); /* no key outlives its use */
}

/* The key new tickets are encrypted under from `start` to `end` (wall clock); after that,
 * the Python callback is asked again. Called from inside that callback, once an epoch: the
 * key not in use is written, then published. Handshakes run on one thread (the event loop's),
 * so no reader is still inside the buffer being written. */
void ramparts_tickets_set_key(int slot, const unsigned char *name, const unsigned char *hmac,
                              const unsigned char *aes, double start, double end) {
    slot_t *s = &slots[slot];
    int at = __atomic_load_n(&s->current, __ATOMIC_ACQUIRE);
    if (at >= 0 && s->keys[at].start == start && s->keys[at].end == end &&
        memcmp(s->keys[at].name, name, NAME_BYTES) == 0)
        return; /* published already: leave both buffers alone */
    int next = at == 0 ? 1 : 0;
    ticket_key *key = &s->keys[next];
    memcpy(key->name, name, NAME_BYTES);
    memcpy(key->hmac, hmac, HMAC_BYTES);
    memcpy(key->aes, aes, AES_BYTES);
    key->params[0] = (ossl_param){"key", OSSL_PARAM_OCTET_STRING, key->hmac, HMAC_BYTES,
                                  OSSL_PARAM_UNMODIFIED};
    key->params[1] = (ossl_param){"digest", OSSL_PARAM_UTF8_STRING, digest_name,
                                  sizeof digest_name - 1, OSSL_PARAM_UNMODIFIED};
    key->params[2] = (ossl_param){NULL, 0, NULL, 0, 0};
    key->start = start;
    key->end = end;
    __atomic_store_n(&s->current, next, __ATOMIC_RELEASE);
}

/* An importable module, so that Python finds the shared object built for it. */
static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_tickets",
    .m_doc = "Session ticket keys in C (see _tickets.c).", .m_size = -1};

PyMODINIT_FUNC PyInit__tickets(void) { return PyModule_Create(&module); }
