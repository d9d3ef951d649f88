/* What the three services share at start-up and shutdown: the command line
 * (--config, --broker, --help, --version), loading and checking the config,
 * logging, signals (handlers only set a flag), the MQTT client with its
 * retained status and Last Will, and topic names. */
#ifndef EC_SERVICE_H
#define EC_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include "edgecascade/config.h"
#include "edgecascade/mqtt.h"

typedef struct ec_service {
    const char *name; /* "router", "local", "relay" */
    ec_config cfg;
    ec_mqtt *mqtt;
    char client_id[96];
    char status_topic[256];
    ec_mqtt_overflow_fn on_overflow; /* optional, set before ec_service_connect */
    ec_mqtt_arrival_fn on_arrival;   /* optional, same ctx */
    void *overflow_ctx;
} ec_service;

/* Parses argv, loads the config and sets up logging. Returns 0 to go on,
 * otherwise the exit code (0 after --help/--version, 2 on usage or config
 * errors, with the message already printed). */
int ec_service_init(ec_service *s, const char *name, const char *summary, int argc, char **argv);

/* Creates the MQTT client, subscribes to the given filters (NULL-terminated)
 * and connects, retrying until the broker answers or a signal arrives. */
ec_err ec_service_connect(ec_service *s, const char *const *filters, ec_error *err);

/* Broker credentials for one program (ec_service_init calls it with the
 * service's name; the CLI may call it with its own): every "{service}" in
 * mqtt.username and mqtt.password_file becomes name, so one shared config
 * gives each service its own broker user; then, when mqtt.password is empty,
 * the first line of mqtt.password_file becomes it (never logged). */
ec_err ec_service_credentials(ec_config *cfg, const char *name, ec_error *err);

/* True once SIGTERM or SIGINT arrived. */
bool ec_service_stopping(void);

/* Publishes offline, disconnects, frees everything. */
void ec_service_shutdown(ec_service *s);

/* Writes "<root>/<suffix>" into out; returns out, or NULL when it does not fit. */
char *ec_topic(const ec_config *cfg, char *out, size_t outlen, const char *suffix);

#endif
