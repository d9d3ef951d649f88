/* Fuzzes the configuration loader (YAML through the config_map table, then
 * the cross-field checks). A refusal must say why; an accepted configuration
 * must be complete enough for the services (at least one tier, a topic root). */
#include "fuzz.h"

#include "edgecascade/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ec_config cfg;
    ec_error err = {0};
    memset(&cfg, 0, sizeof(cfg));
    if (ec_config_load_string(&cfg, (const char *)data, size, &err) == EC_OK) {
        FUZZ_CHECK(cfg.n_tiers >= 1 && cfg.n_tiers <= EC_MAX_TIERS, "tier count out of range");
        FUZZ_CHECK(cfg.topic_root != NULL && cfg.broker != NULL, "missing resolved fields");
        for (size_t i = 0; i < cfg.n_tiers; i++)
            FUZZ_CHECK(cfg.tiers[i].name && cfg.tiers[i].provider && cfg.tiers[i].model,
                       "tier without name, provider or model");
    } else {
        FUZZ_CHECK(err.msg[0] != '\0', "refused without a message");
    }
    ec_config_free(&cfg);
    return 0;
}
