#include "router_mhd.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define EC_MHD_SONAME "libmicrohttpd.so.12" /* Debian 12: libmicrohttpd12 */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static ec_mhd_api g_api;
static bool g_ok;
static char g_why[300];

/* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
#define LOAD(field, name)                                                                          \
    do {                                                                                           \
        void *sym = dlsym(h, name);                                                                \
        if (!sym) {                                                                                \
            snprintf(g_why, sizeof(g_why), "%s: no symbol %s", EC_MHD_SONAME, name);               \
            return;                                                                                \
        }                                                                                          \
        memcpy(&g_api.field, &sym, sizeof(sym));                                                   \
    } while (0)

static void load(void)
{
    void *h = dlopen(EC_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(g_why, sizeof(g_why), "%s", e ? e : EC_MHD_SONAME ": cannot be loaded");
        return;
    }
    LOAD(start_daemon, "MHD_start_daemon");
    LOAD(stop_daemon, "MHD_stop_daemon");
    LOAD(create_response_from_buffer, "MHD_create_response_from_buffer");
    LOAD(add_response_header, "MHD_add_response_header");
    LOAD(queue_response, "MHD_queue_response");
    LOAD(destroy_response, "MHD_destroy_response");
    LOAD(lookup_connection_value, "MHD_lookup_connection_value");
    g_ok = true;
}

const ec_mhd_api *ec_mhd_load(ec_error *err)
{
    pthread_once(&g_once, load);
    if (g_ok)
        return &g_api;
    ec_error_set(err, EC_ERR_CONFIG,
                 "http.port is set but the HTTP server library cannot be loaded (%s); "
                 "install it with: apt-get install libmicrohttpd12",
                 g_why);
    return NULL;
}
