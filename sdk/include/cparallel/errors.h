/*
 * cparallel/errors.h - error codes shared by the core and every plugin.
 *
 * Every fallible function of the SDK and of a plugin returns 0 on success or one of the negative
 * CPAR_E* codes below. Detail text travels separately (cpar_host_t.set_error), so a code alone is
 * never the whole story for a user, but it is always enough for a caller to decide what to do.
 */
#ifndef CPARALLEL_ERRORS_H
#define CPARALLEL_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CPAR_OK = 0,
    CPAR_EINVAL = -1,    /* an argument or a value is not acceptable */
    CPAR_ENOMEM = -2,    /* out of memory */
    CPAR_ENOENT = -3,    /* no such record, key, file or plugin */
    CPAR_EEXIST = -4,    /* already exists (duplicate record, id in use) */
    CPAR_EIO = -5,       /* I/O or storage failure */
    CPAR_ENOTSUP = -6,   /* not supported by this plugin or build */
    CPAR_EPROTO = -7,    /* malformed or unauthenticated message */
    CPAR_EBUSY = -8,     /* resource busy or still in use */
    CPAR_EAGAIN = -9,    /* nothing to do now; try again later */
    CPAR_ECONFIG = -10,  /* bad configuration */
    CPAR_EABI = -11,     /* plugin ABI mismatch */
    CPAR_ESTATE = -12,   /* call not valid in the current state */
    CPAR_ETIMEDOUT = -13, /* a deadline passed */
    CPAR_E2BIG = -14,    /* over a size limit */
    CPAR_EINTERNAL = -15 /* a bug: an invariant does not hold */
};

/* Short symbolic name of a code ("CPAR_ENOENT"); never NULL. */
static inline const char *cpar_err_name(int code)
{
    switch (code) {
    case CPAR_OK: return "CPAR_OK";
    case CPAR_EINVAL: return "CPAR_EINVAL";
    case CPAR_ENOMEM: return "CPAR_ENOMEM";
    case CPAR_ENOENT: return "CPAR_ENOENT";
    case CPAR_EEXIST: return "CPAR_EEXIST";
    case CPAR_EIO: return "CPAR_EIO";
    case CPAR_ENOTSUP: return "CPAR_ENOTSUP";
    case CPAR_EPROTO: return "CPAR_EPROTO";
    case CPAR_EBUSY: return "CPAR_EBUSY";
    case CPAR_EAGAIN: return "CPAR_EAGAIN";
    case CPAR_ECONFIG: return "CPAR_ECONFIG";
    case CPAR_EABI: return "CPAR_EABI";
    case CPAR_ESTATE: return "CPAR_ESTATE";
    case CPAR_ETIMEDOUT: return "CPAR_ETIMEDOUT";
    case CPAR_E2BIG: return "CPAR_E2BIG";
    case CPAR_EINTERNAL: return "CPAR_EINTERNAL";
    default: return "CPAR_E?";
    }
}

/* Human-readable description of a code; never NULL. */
static inline const char *cpar_strerror(int code)
{
    switch (code) {
    case CPAR_OK: return "success";
    case CPAR_EINVAL: return "invalid argument";
    case CPAR_ENOMEM: return "out of memory";
    case CPAR_ENOENT: return "not found";
    case CPAR_EEXIST: return "already exists";
    case CPAR_EIO: return "I/O error";
    case CPAR_ENOTSUP: return "not supported";
    case CPAR_EPROTO: return "protocol error";
    case CPAR_EBUSY: return "busy";
    case CPAR_EAGAIN: return "try again";
    case CPAR_ECONFIG: return "configuration error";
    case CPAR_EABI: return "plugin ABI mismatch";
    case CPAR_ESTATE: return "invalid state";
    case CPAR_ETIMEDOUT: return "timed out";
    case CPAR_E2BIG: return "too large";
    case CPAR_EINTERNAL: return "internal error";
    default: return "unknown error";
    }
}

#ifdef __cplusplus
}
#endif
#endif /* CPARALLEL_ERRORS_H */
