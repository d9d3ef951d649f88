/* The key table (config_table.c) as config.c sees it; private to
 * common/config. The table is data, the code that loads it lives in config.c,
 * and the list item hook of the tiers (ec_config_tier_finish) is config.c's
 * because it fills in what a tier's provider implies. */
#ifndef EC_CONFIG_TABLE_H
#define EC_CONFIG_TABLE_H

#include <stddef.h>

#include "config_map.h"

/* The top level of ec_config, and one item of its tiers list. */
extern const ec_cm_entry ec_config_table[];
extern const ec_cm_entry ec_config_tier_table[];

/* The default cascade, as the keys a person would write in the file: each
 * tier a NULL-key-terminated list of key/value pairs. */
typedef struct ec_config_kv {
    const char *key, *value;
} ec_config_kv;
extern const ec_config_kv *const ec_config_default_tiers[];
extern const size_t ec_config_n_default_tiers;

/* The tiers list's finish hook (config.c): fills what the tier's provider
 * implies and checks its name is unique. */
ec_err ec_config_tier_finish(void *items, size_t idx, const ec_cm_where *w, ec_error *err);

#endif
