/* The CLI's MQTT connection: the services' credentials handling
 * (ec_service_credentials: "{service}" placeholders, mqtt.password_file) and
 * TLS files, for a short-lived client with a clean session, so a command run
 * with the plant's shared config logs in as the operator user. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "edgecascade/mqtt.h"
#include "edgecascade/service.h"
#include "edgecascade/util.h"

ec_err cli_mqtt_open(ec_config *cfg, const char *name, const char *filter, int timeout_ms,
                     ec_mqtt **out, bool *connected, ec_error *err)
{
    char cid[64];
    ec_err rc;
    *out = NULL;
    if (connected)
        *connected = false;
    snprintf(cid, sizeof(cid), "edgecascade-cli-%s-%d", name, (int)getpid());
    /* The broker user of the CLI: "{service}" in mqtt.username and
     * mqtt.password_file becomes "cli" (edgecascade-cli in
     * deploy/mosquitto/make-users.sh). */
    if ((rc = ec_service_credentials(cfg, "cli", err)))
        return rc;
    ec_mqtt_opts o = {.uri = cfg->broker,
                      .client_id = cid,
                      .username = cfg->username && *cfg->username ? cfg->username : NULL,
                      .password = cfg->password && *cfg->password ? cfg->password : NULL,
                      .clean_start = true,
                      .session_expiry_s = 0,
                      .ca_file = cfg->ca_file,
                      .cert_file = cfg->cert_file,
                      .key_file = cfg->key_file};
    ec_mqtt *m = NULL;
    if ((rc = ec_mqtt_create(&m, &o, err)) ||
        (filter && (rc = ec_mqtt_subscribe(m, filter, 1, err))) ||
        (rc = ec_mqtt_connect(m, timeout_ms, err))) {
        /* Connected but not subscribed: the broker refused the filter. */
        if (connected && m)
            *connected = ec_mqtt_connected(m);
        ec_mqtt_destroy(m);
        m = NULL;
    } else if (connected) {
        *connected = true;
    }
    *out = m;
    return rc;
}
