/* libmosquitto and libcrypto, loaded when the host first calls them.
 *
 * Linked, they are 1.8 MiB of every sts-lua process (libcrypto alone is
 * 1.4 MiB of pages touched at load: its relocations and constructors), also
 * of the commands that never connect (sts-keygen, a shell before `start`, a
 * script that only computes). So the host links neither: each function the
 * core calls is defined here under its own name, and its first call loads
 * the library by the soname found at build time and looks the function up.
 * The core calls them as before, and the library's header checks each
 * definition's type. Everything else made of the core (the sts.so module,
 * the tests) links the libraries as usual.
 *
 * This file is compiled with hidden visibility, so the host (linked with
 * -E for the modules it loads) does not export these names, and the
 * libraries' calls of their own functions stay inside them. */
#include "util/log.h"

#include <dlfcn.h>
#include <mosquitto.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#ifdef STS_AEAD_OPENSSL
#include <openssl/err.h>
#include <openssl/evp.h>
#endif

struct library {
    const char *soname;
    void *handle;
};

static struct library mosquitto = { STS_MOSQUITTO_SONAME, NULL };
#ifdef STS_AEAD_OPENSSL
static struct library libcrypto = { STS_LIBCRYPTO_SONAME, NULL };
#endif

/* A library that cannot be loaded ends the process with the status the
 * dynamic loader gives one whose library is missing at start: nothing of it
 * can be done without. _exit, as exit handlers may call the same library. */
static void missing(const char *what)
{
    sts_error("cannot load a library it needs: %s", what);
    fflush(NULL);
    _exit(127);
}

/* Stores the address of lib's function name in *fn (a function pointer of
 * the given size): ISO C has no cast from an object pointer to a function's.
 * Called once per function, so kept out of line: each definition stays a
 * test and a jump. */
__attribute__((noinline, cold))
static void resolve(struct library *lib, const char *name, void *fn, size_t size)
{
    void *sym;

    if (lib->handle == NULL && (lib->handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL)) == NULL)
        missing(dlerror());
    dlerror();
    sym = dlsym(lib->handle, name);
    if (sym == NULL) missing(dlerror());
    memcpy(fn, &sym, size);
}

/* A definition's parameters from their types (named a to h) and the same
 * names as the arguments of the real call. __typeof__ lets a type be a
 * function pointer's. */
#define PARAMS0(T) void
#define PARAMS1(A) __typeof__(A) a
#define PARAMS2(A, B) PARAMS1(A), __typeof__(B) b
#define PARAMS3(A, B, C) PARAMS2(A, B), __typeof__(C) c
#define PARAMS4(A, B, C, D) PARAMS3(A, B, C), __typeof__(D) d
#define PARAMS5(A, B, C, D, E) PARAMS4(A, B, C, D), __typeof__(E) e
#define PARAMS6(A, B, C, D, E, F) PARAMS5(A, B, C, D, E), __typeof__(F) f
#define PARAMS8(A, B, C, D, E, F, G, H) PARAMS6(A, B, C, D, E, F), __typeof__(G) g, __typeof__(H) h
#define ARGS0
#define ARGS1 a
#define ARGS2 ARGS1, b
#define ARGS3 ARGS2, c
#define ARGS4 ARGS3, d
#define ARGS5 ARGS4, e
#define ARGS6 ARGS5, f
#define ARGS8 ARGS6, g, h

/* real: lib's function name, looked up on the first call. */
#define REAL(lib, name)                                              \
    static __typeof__(&name) real;                                   \
    if (real == NULL) resolve(&lib, #name, &real, sizeof real)

/* name, returning ret, of n parameters of the given types, from lib. */
#define LAZY(lib, ret, name, n, ...)                                 \
    ret name(PARAMS##n(__VA_ARGS__))                                 \
    {                                                                \
        REAL(lib, name);                                             \
        return real(ARGS##n);                                        \
    }

#define LAZY_VOID(lib, name, n, ...)                                 \
    void name(PARAMS##n(__VA_ARGS__))                                \
    {                                                                \
        REAL(lib, name);                                             \
        real(ARGS##n);                                               \
    }

typedef struct mosquitto *mosq_client;
typedef const mosquitto_property *prop_list;

/* The library and its clients */
LAZY(mosquitto, int, mosquitto_lib_init, 0, void)
LAZY(mosquitto, int, mosquitto_lib_version, 3, int *, int *, int *)
LAZY(mosquitto, mosq_client, mosquitto_new, 3, const char *, bool, void *)
LAZY_VOID(mosquitto, mosquitto_destroy, 1, mosq_client)
LAZY(mosquitto, int, mosquitto_int_option, 3, mosq_client, enum mosq_opt_t, int)
LAZY(mosquitto, int, mosquitto_will_set, 6, mosq_client, const char *, int, const void *, int, bool)
LAZY(mosquitto, int, mosquitto_username_pw_set, 3, mosq_client, const char *, const char *)
LAZY(mosquitto, int, mosquitto_tls_set, 6, mosq_client, const char *, const char *, const char *,
     const char *, int (*)(char *, int, int, void *))
LAZY(mosquitto, int, mosquitto_tls_opts_set, 4, mosq_client, int, const char *, const char *)
LAZY(mosquitto, int, mosquitto_tls_insecure_set, 2, mosq_client, bool)
LAZY(mosquitto, int, mosquitto_tls_psk_set, 4, mosq_client, const char *, const char *, const char *)

/* Connections, driven by the host's loop */
LAZY(mosquitto, int, mosquitto_connect_bind_async, 5, mosq_client, const char *, int, int, const char *)
LAZY(mosquitto, int, mosquitto_reconnect_async, 1, mosq_client)
LAZY(mosquitto, int, mosquitto_disconnect, 1, mosq_client)
LAZY(mosquitto, int, mosquitto_socket, 1, mosq_client)
LAZY(mosquitto, bool, mosquitto_want_write, 1, mosq_client)
LAZY(mosquitto, int, mosquitto_loop_read, 2, mosq_client, int)
LAZY(mosquitto, int, mosquitto_loop_write, 2, mosq_client, int)
LAZY(mosquitto, int, mosquitto_loop_misc, 1, mosq_client)

/* Callbacks */
LAZY_VOID(mosquitto, mosquitto_connect_v5_callback_set, 2, mosq_client,
          void (*)(mosq_client, void *, int, int, prop_list))
LAZY_VOID(mosquitto, mosquitto_disconnect_v5_callback_set, 2, mosq_client,
          void (*)(mosq_client, void *, int, prop_list))
LAZY_VOID(mosquitto, mosquitto_message_v5_callback_set, 2, mosq_client,
          void (*)(mosq_client, void *, const struct mosquitto_message *, prop_list))
LAZY_VOID(mosquitto, mosquitto_publish_v5_callback_set, 2, mosq_client,
          void (*)(mosq_client, void *, int, int, prop_list))
LAZY_VOID(mosquitto, mosquitto_log_callback_set, 2, mosq_client,
          void (*)(mosq_client, void *, int, const char *))

/* Messages and subscriptions */
LAZY(mosquitto, int, mosquitto_publish_v5, 8, mosq_client, int *, const char *, int, const void *, int,
     bool, prop_list)
LAZY(mosquitto, int, mosquitto_subscribe, 4, mosq_client, int *, const char *, int)
LAZY(mosquitto, int, mosquitto_unsubscribe, 3, mosq_client, int *, const char *)
LAZY(mosquitto, int, mosquitto_pub_topic_check, 1, const char *)
LAZY(mosquitto, int, mosquitto_sub_topic_check, 1, const char *)

/* MQTT 5 properties */
LAZY(mosquitto, int, mosquitto_property_add_binary, 4, mosquitto_property **, int, const void *,
     uint16_t)
LAZY(mosquitto, int, mosquitto_property_add_int32, 3, mosquitto_property **, int, uint32_t)
LAZY(mosquitto, int, mosquitto_property_add_string, 3, mosquitto_property **, int, const char *)
LAZY(mosquitto, int, mosquitto_property_add_string_pair, 4, mosquitto_property **, int,
     const char *, const char *)
LAZY(mosquitto, int, mosquitto_property_copy_all, 2, mosquitto_property **, prop_list)
LAZY_VOID(mosquitto, mosquitto_property_free_all, 1, mosquitto_property **)
LAZY(mosquitto, prop_list, mosquitto_property_read_binary, 5, prop_list, int, void **, uint16_t *, bool)
LAZY(mosquitto, prop_list, mosquitto_property_read_byte, 4, prop_list, int, uint8_t *, bool)
LAZY(mosquitto, prop_list, mosquitto_property_read_int32, 4, prop_list, int, uint32_t *, bool)
LAZY(mosquitto, prop_list, mosquitto_property_read_string, 4, prop_list, int, char **, bool)
LAZY(mosquitto, prop_list, mosquitto_property_read_string_pair, 5, prop_list, int, char **, char **, bool)

/* Words for codes */
LAZY(mosquitto, const char *, mosquitto_strerror, 1, int)
LAZY(mosquitto, const char *, mosquitto_connack_string, 1, int)
LAZY(mosquitto, const char *, mosquitto_reason_string, 1, int)

#ifdef STS_AEAD_OPENSSL
/* The AEAD backend (src/crypto/aead_openssl.c) */
LAZY(libcrypto, EVP_CIPHER_CTX *, EVP_CIPHER_CTX_new, 0, void)
LAZY_VOID(libcrypto, EVP_CIPHER_CTX_free, 1, EVP_CIPHER_CTX *)
LAZY(libcrypto, int, EVP_CIPHER_CTX_ctrl, 4, EVP_CIPHER_CTX *, int, int, void *)
LAZY(libcrypto, int, EVP_CipherInit_ex, 6, EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *,
     const unsigned char *, const unsigned char *, int)
LAZY(libcrypto, int, EVP_CipherUpdate, 5, EVP_CIPHER_CTX *, unsigned char *, int *,
     const unsigned char *, int)
LAZY(libcrypto, int, EVP_EncryptFinal_ex, 3, EVP_CIPHER_CTX *, unsigned char *, int *)
LAZY(libcrypto, int, EVP_DecryptFinal_ex, 3, EVP_CIPHER_CTX *, unsigned char *, int *)
LAZY(libcrypto, const EVP_CIPHER *, EVP_chacha20_poly1305, 0, void)
LAZY(libcrypto, const EVP_CIPHER *, EVP_aes_256_gcm, 0, void)
LAZY_VOID(libcrypto, ERR_clear_error, 0, void)
#endif
