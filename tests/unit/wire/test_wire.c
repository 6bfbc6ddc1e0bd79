/* test_wire.c - runs the wire tests and holds their fixture helpers. */
#include "wire_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CPAR_WIRE_DATA_DIR
#error "CPAR_WIRE_DATA_DIR must name tests/unit/wire/data"
#endif

static json_t *manifest;

json_t *wt_manifest(void)
{
    json_error_t err;

    if (!manifest) {
        manifest = json_load_file(CPAR_WIRE_DATA_DIR "/manifest.json", 0, &err);
        if (!manifest)
            fail_msg("manifest.json: %s (line %d)", err.text, err.line);
    }
    return manifest;
}

json_t *wt_messages(void)
{
    json_t *a = json_object_get(wt_manifest(), "messages");

    assert_true(json_is_array(a) && json_array_size(a) >= 5);
    return a;
}

const char *wt_key(void)
{
    return wt_str(wt_manifest(), "key");
}

const char *wt_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    if (!s)
        fail_msg("no string \"%s\" in fixture", key);
    return s;
}

static uint32_t read_be32(FILE *f)
{
    unsigned char b[4];

    assert_int_equal(fread(b, 1, 4, f), 4);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

void wt_load(const char *file, cpar_msg_t *m)
{
    char path[1024];
    FILE *f;
    uint32_t n;

    snprintf(path, sizeof path, "%s/%s", CPAR_WIRE_DATA_DIR, file);
    f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open fixture %s", path);
    cpar_msg_clear(m);
    n = read_be32(f);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len = read_be32(f);
        char *buf = malloc(len ? len : 1);

        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, len, f), len);
        assert_int_equal(cpar_msg_append(m, buf, len), 0);
        free(buf);
    }
    assert_int_equal(fgetc(f), EOF);
    fclose(f);
}

char *wt_frame_dup(const cpar_msg_t *m, size_t i)
{
    cpar_bytes_t b = cpar_msg_frame(m, i);
    char *s = malloc(b.len + 1);

    assert_non_null(s);
    if (b.len)
        memcpy(s, b.data, b.len);
    s[b.len] = '\0';
    return s;
}

int wt_frame_equal(const cpar_msg_t *a, size_t i, const cpar_msg_t *b, size_t j)
{
    cpar_bytes_t x = cpar_msg_frame(a, i), y = cpar_msg_frame(b, j);

    return x.len == y.len && (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
}

void wt_append_str(cpar_msg_t *m, const char *s)
{
    assert_int_equal(cpar_msg_append(m, s, strlen(s)), 0);
}

int main(void)
{
    int failed = 0;

    failed += wt_run_fixture_tests();
    failed += wt_run_msg_tests();
    failed += wt_run_session_tests();
    failed += wt_run_zmq_tests();
    json_decref(manifest);
    return failed ? 1 : 0;
}
