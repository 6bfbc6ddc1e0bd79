/* contractcfg.c - CPAR_CONTRACT_CONFIG for the contract suites (see contractcfg.h). */
#include "contractcfg.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <jansson.h>

void contract_load_config(cpar_config_t *cfg)
{
    const char *text = getenv("CPAR_CONTRACT_CONFIG");
    json_error_t jerr;
    json_t *root, *section;
    const char *sname;

    if (!text || !*text)
        return;
    root = json_loads(text, 0, &jerr);
    if (!json_is_object(root))
        fail_msg("CPAR_CONTRACT_CONFIG is not a JSON object: %s", jerr.text);
    json_object_foreach(root, sname, section)
    {
        const char *key;
        json_t *value;
        if (!json_is_object(section))
            fail_msg("CPAR_CONTRACT_CONFIG: section %s is not an object", sname);
        json_object_foreach(section, key, value)
        {
            assert_int_equal(cpar_config_set(cfg, sname, key, json_incref(value), CPAR_SRC_CLI,
                                             "CPAR_CONTRACT_CONFIG"),
                             0);
        }
    }
    json_decref(root);
}
