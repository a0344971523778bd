// CCrypto: the system's libcrypto (OpenSSL 3) for SRTP: AES-128 in counter mode and GCM, HMAC-SHA1.
// swift-crypto cannot be used: its mirror versions need swift-asn1 with tools 6.1, and the image is
// built with Swift 6.0.3. OSSL_PARAM building is C-only, so HMAC setup is wrapped here.
#ifndef CLASSBOX_CCRYPTO_SHIM_H
#define CLASSBOX_CCRYPTO_SHIM_H
// The SHA-1 block functions are deprecated in OpenSSL 3 in favour of EVP_MAC, but EVP_MAC re-keys by
// duplicating provider contexts, which allocates on every packet; the block functions work on plain
// structs. HMAC (RFC 2104) is built from them with the key's inner and outer states kept.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

/// HMAC-SHA1 key schedule: SHA-1 states after absorbing key XOR ipad and key XOR opad.
typedef struct { SHA_CTX inner; SHA_CTX outer; } cb_hmac_sha1_key;

static inline void cb_hmac_sha1_setup(cb_hmac_sha1_key *k, const unsigned char *key, size_t length) {
    unsigned char block[64], pad[64];
    memset(block, 0, sizeof block);
    if (length > 64) { SHA1(key, length, block); } else { memcpy(block, key, length); }
    for (int i = 0; i < 64; i++) pad[i] = block[i] ^ 0x36;
    SHA1_Init(&k->inner); SHA1_Update(&k->inner, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] = block[i] ^ 0x5c;
    SHA1_Init(&k->outer); SHA1_Update(&k->outer, pad, 64);
}

/// HMAC-SHA1 of `a` followed by `b` (b may be NULL) into `out` (20 bytes). Allocates nothing.
static inline void cb_hmac_sha1(const cb_hmac_sha1_key *k, const unsigned char *a, size_t na,
                                const unsigned char *b, size_t nb, unsigned char *out) {
    SHA_CTX ctx = k->inner;
    unsigned char inner[20];
    SHA1_Update(&ctx, a, na);
    if (b) SHA1_Update(&ctx, b, nb);
    SHA1_Final(inner, &ctx);
    ctx = k->outer;
    SHA1_Update(&ctx, inner, 20);
    SHA1_Final(out, &ctx);
}

static inline int cb_EVP_CTRL_GCM_GET_TAG(void) { return EVP_CTRL_GCM_GET_TAG; }
static inline int cb_EVP_CTRL_GCM_SET_TAG(void) { return EVP_CTRL_GCM_SET_TAG; }

#endif
