/* What the harness's files share beyond harness.h (harness.c: the stack;
 * harness_proc.c: child processes; harness_client.c: talking to the stack).
 * Private to the harness; tests include harness.h only. */
#ifndef EC_HARNESS_INTERNAL_H
#define EC_HARNESS_INTERNAL_H

#include "harness.h"

/* Starts argv as process name of the stack h (our own programs under
 * $EC_SERVICE_WRAPPER when set), its output in <dir>/<name>.log, and
 * remembers it so that it is killed if the test binary exits early
 * (harness_proc.c). */
void ech_spawn(ech *h, ech_proc *p, const char *name, char *const argv[]);

#endif
