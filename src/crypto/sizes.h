/* Sizes in bytes of the keys, nonces, tags, blocks and digests the crypto
 * and protocol layers use: each is defined here once, and every buffer or
 * length check names it rather than repeating the number. */
#ifndef STS_CRYPTO_SIZES_H
#define STS_CRYPTO_SIZES_H

#define STS_KEY_LEN 32        /* a symmetric key: ChaCha20-Poly1305, AES-256, a Noise psk */
#define STS_X25519_LEN 32     /* an X25519 private key, public key or shared secret */
#define STS_AEAD_NONCE_LEN 12
#define STS_AEAD_TAG_LEN 16
#define STS_AES_BLOCK_LEN 16  /* also a CBC IV */
#define STS_SHA256_LEN 32
#define STS_SHA512_LEN 64
#define STS_HASH_MAX_LEN STS_SHA512_LEN /* the longest digest */

#endif
