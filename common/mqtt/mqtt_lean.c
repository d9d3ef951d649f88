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
 * the library itself.
 *
 * Not plain malloc/free, though: Paho 1.3.12 frees some blocks twice, and
 * reads one after freeing it, when a connection drops with QoS 1 publishes in
 * flight. MQTTAsync_removeResponsesAndCommands frees a publish command's
 * topic and payload, which the session's copy of the message still points
 * to; MQTTAsync_cleanSession (the broker answered sessionPresent 0, as after
 * a restart without persistence) frees them again, and MQTTProtocol_retry
 * (two processes with one client id taking the session from each other)
 * sends a freed topic (upstream issues 1194, 1532, 1621, 1622). The stock
 * build survives the double free because its heap tracking frees only
 * blocks it knows; plain free() corrupted the heap: under load, a broker
 * restart killed the router ("double free or corruption", "unaligned tcache
 * chunk"; AddressSanitizer named the two frees above). So each block carries
 * a tag in front of what Paho sees, LIVE until its first free turns it DEAD
 * (atomically, for the two threads above): a free that finds no LIVE tag is
 * counted (ec_mqtt_paho_double_frees) and ignored, as the stock build
 * ignores it. And a freed block waits in its thread's short queue before it
 * goes back to malloc, so the late read finds the bytes it expects and the
 * second free finds DEAD, not someone else's block. Blocks of 64 KiB and
 * more skip the queue (they would hold memory); their tag still catches a
 * second free unless malloc has returned their pages to the system. The six signatures are
 * Heap.h's, StackTrace.h's and Log.h's, unchanged since Paho 1.3.0. Configure with
 * -DEC_PAHO_TRACKING=ON to keep all of it (to hunt a bug inside Paho with MQTT_C_CLIENT_TRACE=ON).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/mqtt.h"

void *__wrap_mymalloc(char *file, int line, size_t size);
void *__wrap_myrealloc(char *file, int line, void *p, size_t size);
void __wrap_myfree(char *file, int line, void *p);
void __wrap_StackTrace_entry(const char *name, int line, int trace_level);
void __wrap_StackTrace_exit(const char *name, int line, void *rc, int trace_level);
void __wrap_Log(int log_level, int msgno, char *format, ...);

static atomic_bool g_used;
static atomic_ulong g_double_frees;

/* 16 bytes, so that what Paho gets keeps malloc's alignment. */
typedef struct tag {
    _Atomic uint64_t state;
    uint64_t size;
} tag;

#define TAG_LIVE  UINT64_C(0x4c495645b10c7a91)
#define TAG_DEAD  UINT64_C(0x44454144b10c7a91)
#define QUEUE_LEN 64
/* What one thread's queue may hold; a larger block is freed at once. */
#define QUEUE_BYTES (256u * 1024u)

/* Freed blocks of one thread, a ring: count of them from head, the oldest. */
typedef struct late_queue {
    tag *blocks[QUEUE_LEN];
    unsigned head, count;
    size_t bytes;
} late_queue;

/* This thread's queue; the key only gives it a destructor at thread exit. */
static __thread late_queue *t_queue;
static pthread_key_t g_queue_key;
static pthread_once_t g_queue_once = PTHREAD_ONCE_INIT;
static bool g_queue_ok;

static void queue_flush(void *arg)
{
    late_queue *q = arg;
    t_queue = NULL;
    for (unsigned i = 0; i < q->count; i++)
        free(q->blocks[(q->head + i) % QUEUE_LEN]);
    free(q);
}

static void queue_key_make(void)
{
    g_queue_ok = pthread_key_create(&g_queue_key, queue_flush) == 0;
}

static late_queue *thread_queue(void)
{
    if (t_queue)
        return t_queue;
    pthread_once(&g_queue_once, queue_key_make);
    late_queue *q = g_queue_ok ? calloc(1, sizeof(*q)) : NULL;
    if (q && pthread_setspecific(g_queue_key, q) != 0) {
        free(q);
        q = NULL;
    }
    return t_queue = q;
}

/* Queues t, freeing the oldest blocks while the queue is full or would
 * hold too many bytes; t itself when it is too large or there is no queue. */
static void release(tag *t)
{
    late_queue *q = t->size <= QUEUE_BYTES ? thread_queue() : NULL;
    if (!q) {
        free(t);
        return;
    }
    while (q->count && (q->count == QUEUE_LEN || q->bytes + t->size > QUEUE_BYTES)) {
        tag *old = q->blocks[q->head];
        q->bytes -= old->size;
        free(old);
        q->head = (q->head + 1) % QUEUE_LEN;
        q->count--;
    }
    q->blocks[(q->head + q->count) % QUEUE_LEN] = t;
    q->count++;
    q->bytes += t->size;
}

void *__wrap_mymalloc(char *file, int line, size_t size)
{
    (void)file;
    (void)line;
    if (!atomic_load_explicit(&g_used, memory_order_relaxed))
        atomic_store_explicit(&g_used, true, memory_order_relaxed);
    if (size > SIZE_MAX - sizeof(tag))
        return NULL;
    tag *t = malloc(sizeof(tag) + size);
    if (!t)
        return NULL;
    atomic_init(&t->state, TAG_LIVE);
    t->size = size;
    return t + 1;
}

static void noted_double_free(void)
{
    if (atomic_fetch_add(&g_double_frees, 1) == 0)
        ec_log_warn("mqtt: Paho freed a block twice (a known Paho 1.3.12 fault when a "
                    "connection drops with messages in flight); the second free was ignored");
}

void *__wrap_myrealloc(char *file, int line, void *p, size_t size)
{
    if (!p)
        return __wrap_mymalloc(file, line, size);
    tag *t = (tag *)p - 1;
    if (atomic_load(&t->state) != TAG_LIVE || size > SIZE_MAX - sizeof(tag)) {
        if (atomic_load(&t->state) != TAG_LIVE)
            noted_double_free();
        return NULL; /* Paho takes it as out of memory */
    }
    tag *n = realloc(t, sizeof(tag) + size);
    if (!n)
        return NULL;
    n->size = size;
    return n + 1;
}

void __wrap_myfree(char *file, int line, void *p)
{
    (void)file;
    (void)line;
    if (!p)
        return;
    tag *t = (tag *)p - 1;
    uint64_t live = TAG_LIVE;
    if (!atomic_compare_exchange_strong(&t->state, &live, TAG_DEAD)) {
        noted_double_free();
        return;
    }
    release(t);
}

unsigned long ec_mqtt_paho_double_frees(void)
{
    return atomic_load(&g_double_frees);
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
