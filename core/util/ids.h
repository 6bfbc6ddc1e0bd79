/*
 * ids.h - random identifiers in ipyparallel's format.
 */
#ifndef CPAR_UTIL_IDS_H
#define CPAR_UTIL_IDS_H

#include <stddef.h>

/* Room for "8hex-24hex" and its NUL, like "da157540-ea0c100915c490ab353cb93f". */
#define CPAR_ID_LEN 34

/* A fresh random id (ipyparallel's new_id()); returns `out`. Uses the OS random source. */
char *cpar_new_id(char out[CPAR_ID_LEN]);

/* Fill `buf` with cryptographically random bytes; 0 or a negative CPAR_E* code. */
int cpar_random_bytes(void *buf, size_t len);

#endif
