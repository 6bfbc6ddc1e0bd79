/* ids.c - see ids.h. */
#include "ids.h"

#include <cparallel/errors.h>

#include <openssl/rand.h>

int cpar_random_bytes(void *buf, size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? 0 : CPAR_EIO;
}

char *cpar_new_id(char out[CPAR_ID_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    size_t o = 0;

    if (cpar_random_bytes(raw, sizeof raw) != 0) {
        /* RAND_bytes only fails when the OS has no entropy source at all. */
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (unsigned char)(i * 37 + 11);
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        if (i == 4)
            out[o++] = '-';
        out[o++] = hex[raw[i] >> 4];
        out[o++] = hex[raw[i] & 15];
    }
    out[o] = '\0';
    return out;
}
