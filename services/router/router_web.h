/* The dashboard's files (services/router/web/), compiled into the router by
 * CMake (web/embed.cmake writes router_web_assets.c at build time), so the
 * binary serves them without a path to install or a file to lose. */
#ifndef EC_ROUTER_WEB_H
#define EC_ROUTER_WEB_H

#include <stddef.h>

typedef struct ec_web_asset {
    const char *path;  /* URL path: "/" for index.html, else "/<file name>" */
    const char *ctype; /* Content-Type */
    const unsigned char *data;
    size_t len;
} ec_web_asset;

extern const ec_web_asset ec_web_assets[];
extern const size_t ec_web_n_assets;

#endif
