/* Paho's debugging bookkeeping, turned off at link time.
 *
 * Debian builds Paho C without PAHO_HIGH_PERFORMANCE, so inside the library
 * - every allocation goes through mymalloc()/myfree(), which keep each block
 *   in a balanced tree under a global mutex, with guard words around it;
 * - every function entry and exit goes through StackTrace_entry()/_exit(),
 *   which keep a per-thread call stack;
 * - Log() formats every trace message (vsnprintf under a global mutex) into
 *   an in-memory ring that only a trace destination (MQTT_C_CLIENT_TRACE) or
 *   a trace callback ever reads. We set neither, and the public
 *   MQTTAsync_setTraceLevel() cannot raise the level above TRACE_MINIMUM.
 * Together they were about a third of the instructions of a service's Paho
 * threads (bench/README.md, "Paho's bookkeeping"). PAHO_HIGH_PERFORMANCE
 * compiles the first two out; Debian's source package, the way to rebuild
 * with it, cannot be fetched on our build machines. So the static library is
 * linked with -Wl,--wrap for these six functions (set on the paho_async
 * target in the top CMakeLists.txt): the library's calls, and only those,
 * arrive here, as plain malloc/realloc/free and no-ops.
 *
 * Safe because Paho is consistent: what it allocates with mymalloc it frees
 * with myfree (the tracked pointer is offset by a guard word, so a mix would
 * already crash the stock build), and the blocks it hands to us
 * (MQTTAsync_freeMessage, MQTTAsync_free, MQTTProperties_free) are freed by
 * the library itself. The six signatures are Heap.h's, StackTrace.h's and
 * Log.h's, unchanged since Paho 1.3.0. Configure with -DEC_PAHO_TRACKING=ON
 * to keep all of it (to hunt a bug inside Paho with MQTT_C_CLIENT_TRACE=ON). */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "edgecascade/mqtt.h"

void *__wrap_mymalloc(char *file, int line, size_t size);
void *__wrap_myrealloc(char *file, int line, void *p, size_t size);
void __wrap_myfree(char *file, int line, void *p);
void __wrap_StackTrace_entry(const char *name, int line, int trace_level);
void __wrap_StackTrace_exit(const char *name, int line, void *rc, int trace_level);
void __wrap_Log(int log_level, int msgno, char *format, ...);

static atomic_bool g_used;

void *__wrap_mymalloc(char *file, int line, size_t size)
{
    (void)file;
    (void)line;
    if (!atomic_load_explicit(&g_used, memory_order_relaxed))
        atomic_store_explicit(&g_used, true, memory_order_relaxed);
    return malloc(size);
}

void *__wrap_myrealloc(char *file, int line, void *p, size_t size)
{
    (void)file;
    (void)line;
    return realloc(p, size);
}

void __wrap_myfree(char *file, int line, void *p)
{
    (void)file;
    (void)line;
    free(p);
}

void __wrap_StackTrace_entry(const char *name, int line, int trace_level)
{
    (void)name;
    (void)line;
    (void)trace_level;
}

void __wrap_StackTrace_exit(const char *name, int line, void *rc, int trace_level)
{
    (void)name;
    (void)line;
    (void)rc;
    (void)trace_level;
}

void __wrap_Log(int log_level, int msgno, char *format, ...)
{
    (void)log_level;
    (void)msgno;
    (void)format;
}

bool ec_mqtt_paho_lean(void)
{
    return atomic_load_explicit(&g_used, memory_order_relaxed);
}
