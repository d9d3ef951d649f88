/* The allocator Paho's calls are wrapped to (common/mqtt/mqtt_lean.c): a
 * block Paho frees twice is freed once, the second free counted and ignored
 * (Paho 1.3.12 does this when a connection drops with QoS 1 publishes in
 * flight), and a freed block keeps its bytes for a while, for Paho's late
 * read of a freed topic. The wrappers are called here as Paho calls them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/mqtt.h"

void *__wrap_mymalloc(char *file, int line, size_t size);
void *__wrap_myrealloc(char *file, int line, void *p, size_t size);
void __wrap_myfree(char *file, int line, void *p);

#define MALLOC(n)     __wrap_mymalloc(__FILE__, __LINE__, n)
#define REALLOC(p, n) __wrap_myrealloc(__FILE__, __LINE__, p, n)
#define FREE(p)       __wrap_myfree(__FILE__, __LINE__, p)

static void second_free_is_ignored(void **state)
{
    (void)state;
    unsigned long before = ec_mqtt_paho_double_frees();
    char *topic = MALLOC(32);
    assert_non_null(topic);
    assert_int_equal((uintptr_t)topic % 16, 0);
    strcpy(topic, "plant/a/result/1");
    FREE(topic);
    /* The freed topic still reads as it was (what MQTTProtocol_retry sends). */
    assert_string_equal(topic, "plant/a/result/1");
    FREE(topic); /* MQTTAsync_cleanSession's second free */
    assert_int_equal(ec_mqtt_paho_double_frees(), before + 1);
    /* realloc of a freed block is refused, not done. */
    assert_null(REALLOC(topic, 64));
    assert_int_equal(ec_mqtt_paho_double_frees(), before + 2);
    FREE(NULL);
    assert_int_equal(ec_mqtt_paho_double_frees(), before + 2);
}

static void realloc_keeps_the_bytes(void **state)
{
    (void)state;
    unsigned long before = ec_mqtt_paho_double_frees();
    char *p = REALLOC(NULL, 8);
    assert_non_null(p);
    memcpy(p, "1234567", 8);
    p = REALLOC(p, 100000);
    assert_non_null(p);
    assert_string_equal(p, "1234567");
    p = REALLOC(p, 4);
    assert_non_null(p);
    assert_memory_equal(p, "1234", 4);
    FREE(p);
    assert_int_equal(ec_mqtt_paho_double_frees(), before);
}

/* Many blocks through one thread's queue, large ones among them: each is
 * freed once (AddressSanitizer and LeakSanitizer would say otherwise), and a
 * second free of any block still queued is ignored. */
static void *churn(void *arg)
{
    (void)arg;
    for (int round = 0; round < 2000; round++) {
        size_t n = round % 97 == 0 ? 300000 : round % 13 == 0 ? 70000 : (size_t)(round % 500) + 1;
        unsigned char *b = MALLOC(n);
        assert_non_null(b);
        memset(b, round & 0xff, n);
        FREE(b);
        if (n < 1000 && round % 7 == 0) /* still in the queue */
            FREE(b);
    }
    return NULL;
}

static void queue_frees_each_block_once(void **state)
{
    (void)state;
    unsigned long before = ec_mqtt_paho_double_frees();
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    unsigned long want = 0;
    for (int round = 0; round < 2000; round++) {
        size_t n = round % 97 == 0 ? 300000 : round % 13 == 0 ? 70000 : (size_t)(round % 500) + 1;
        want += n < 1000 && round % 7 == 0;
    }
    assert_int_equal(ec_mqtt_paho_double_frees() - before, 3 * want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(second_free_is_ignored),
        cmocka_unit_test(realloc_keeps_the_bytes),
        cmocka_unit_test(queue_frees_each_block_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
