/*
 * contractcfg.h - the settings of the contract suites (dbbackend, launcher and scheduler): the
 * JSON object {"Section": {"trait": value}} in CPAR_CONTRACT_CONFIG.
 */
#ifndef CPAR_TEST_CONTRACTCFG_H
#define CPAR_TEST_CONTRACTCFG_H

#include "config/config.h"

/* Set CPAR_CONTRACT_CONFIG's settings in `cfg` (none when it is unset or empty); a setting that
 * is not of that shape fails the running test. */
void contract_load_config(cpar_config_t *cfg);

#endif
