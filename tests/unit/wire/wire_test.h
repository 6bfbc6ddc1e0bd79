/* wire_test.h - shared helpers of the wire tests (fixtures, small builders) and their groups. */
#ifndef CPAR_TEST_WIRE_TEST_H
#define CPAR_TEST_WIRE_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cparallel/errors.h>

#include "wire/wire.h"

/* The manifest written by tests/support/make_wire_fixtures.py (borrowed, loaded once). */
json_t *wt_manifest(void);
/* Its "messages" array. */
json_t *wt_messages(void);
const char *wt_key(void);
/* Load the frames of fixture file `file` into m (cleared first); fails the test on error. */
void wt_load(const char *file, cpar_msg_t *m);
/* A string member of a JSON object, failing the test when absent. */
const char *wt_str(const json_t *o, const char *key);
/* Frame i as an owned NUL-terminated copy. */
char *wt_frame_dup(const cpar_msg_t *m, size_t i);
/* Frames i of a and b hold the same bytes. */
int wt_frame_equal(const cpar_msg_t *a, size_t i, const cpar_msg_t *b, size_t j);
/* Append a frame holding a C string. */
void wt_append_str(cpar_msg_t *m, const char *s);

int wt_run_fixture_tests(void);
int wt_run_msg_tests(void);
int wt_run_session_tests(void);
int wt_run_zmq_tests(void);

#endif
