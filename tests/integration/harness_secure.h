/* The secured broker of deploy/mosquitto/ for integration tests: the shipped
 * edgecascade.conf (paths and port moved to the test's temp dir), the
 * certificates of make-certs.sh, the users and ACL of make-users.sh (PLCs
 * plc1 and plc2, integrator scada), and the services on mqtts:// as their
 * own users, with passwords from files. */
#ifndef EC_HARNESS_SECURE_H
#define EC_HARNESS_SECURE_H

#include "harness.h"

/* Every user make-users.sh made here. */
#define ECH_SECURE_USERS                                                                           \
    {                                                                                              \
        "edgecascade-cli", "edgecascade-router", "edgecascade-local", "edgecascade-relay", "plc1", \
            "plc2", "scada"                                                                        \
    }

typedef struct ech_secure {
    ech h;
    char ca[600];
} ech_secure;

/* Certificates, users, the broker, the simulator, h->config (the router
 * section's extra YAML appended, may be NULL), and the services started.
 * A cloud key is read from EC_TEST_OPENAI_KEY, which the caller sets. */
void ech_secure_start(ech_secure *s, const char *test_name, const char *router_yaml);

/* Writes deploy/mosquitto/edgecascade.conf to out with its paths and port
 * moved into h's temp dir (certs/ and the users' files must be made there). */
void ech_secure_broker_conf(ech *h, const char *out);

/* The password make-users.sh generated for user. */
const char *ech_secure_password(ech_secure *s, const char *user);

/* A client of the secured broker as user (NULL: anonymous; password NULL:
 * the user's own), subscribed to subs (NULL-terminated, may be NULL); NULL
 * when the broker refuses the connection. uri NULL: the TLS listener. */
ec_mqtt *ech_secure_client(ech_secure *s, const char *user, const char *password, const char *uri,
                           const char *const *subs);

/* Publishes a Query with prompt (source may be NULL) on topic with the
 * Response Topic reply; corr receives the Correlation Data (an id, >= 27
 * bytes) and id the query's id (>= 27 bytes). */
void ech_secure_publish(ec_mqtt *c, const char *topic, const char *reply, const char *prompt,
                        const char *source, char *corr, char *id);

/* Waits for the message on c whose Correlation Data is corr (or, corr NULL,
 * whose topic is topic) and decodes its Result: 0, or -1 after timeout_ms. */
int ech_secure_wait(ec_mqtt *c, const char *corr, const char *topic, ec_result *out,
                    int timeout_ms);

/* Messages that arrive on c within ms. */
int ech_secure_drain(ec_mqtt *c, int ms);

#endif
