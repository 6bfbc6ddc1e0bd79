/* why.h - the plugin host's error text for callers that pass a buffer (why, whylen). */
#ifndef CPAR_PLUGINS_WHY_H
#define CPAR_PLUGINS_WHY_H

#include <stddef.h>

#include <cparallel/plugin.h>

/* printf into why[whylen], when why is not NULL and whylen not 0. */
void cpar_why(char *why, size_t whylen, const char *fmt, ...) CPAR_PRINTF(3, 4);

#endif
