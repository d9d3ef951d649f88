/* libmicrohttpd, loaded when the router's HTTP server is turned on.
 *
 * The router links no HTTP server library: libmicrohttpd pulls in GnuTLS,
 * p11-kit, nettle and GMP, whose loading and start-up cost every router about
 * 2.6 MB of resident memory (measured idle: 11.2 MB with it linked, 8.6 MB
 * without; 9.3 MB after 5,000 queries at 1,000 q/s), while the server is off
 * by default (http.port 0). The library is
 * opened with dlopen() the first time http.port is set, and its few entry
 * points are called through this table. */
#ifndef EC_ROUTER_MHD_H
#define EC_ROUTER_MHD_H

#include <microhttpd.h>

#include "edgecascade/err.h"

typedef struct ec_mhd_api {
    struct MHD_Daemon *(*start_daemon)(unsigned int flags, uint16_t port,
                                       MHD_AcceptPolicyCallback apc, void *apc_cls,
                                       MHD_AccessHandlerCallback dh, void *dh_cls, ...);
    void (*stop_daemon)(struct MHD_Daemon *daemon);
    struct MHD_Response *(*create_response_from_buffer)(size_t size, void *buffer,
                                                        enum MHD_ResponseMemoryMode mode);
    enum MHD_Result (*add_response_header)(struct MHD_Response *response, const char *header,
                                           const char *content);
    enum MHD_Result (*queue_response)(struct MHD_Connection *connection, unsigned int status_code,
                                      struct MHD_Response *response);
    void (*destroy_response)(struct MHD_Response *response);
    const char *(*lookup_connection_value)(struct MHD_Connection *connection,
                                           enum MHD_ValueKind kind, const char *key);
} ec_mhd_api;

/* The library's table, loaded once (thread-safe); NULL with err set when
 * libmicrohttpd is not installed. Never unloaded. */
const ec_mhd_api *ec_mhd_load(ec_error *err);

#endif
