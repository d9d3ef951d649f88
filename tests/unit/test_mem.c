/* ec_mem_init (common/core/util.c): glibc's dynamic mmap threshold is off,
 * so after a large block was freed, later large blocks are still mmapped
 * (and given back on free) instead of taken from an arena that keeps them.
 * Counted with mallinfo2's mmapped blocks. The first test shows glibc's own
 * behaviour without the call, so the second's check can fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/util.h"

#if defined(__SANITIZE_ADDRESS__)
#define EC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EC_ASAN 1
#endif
#endif

#if !defined(EC_ASAN)
static void *volatile g_sink; /* keeps the compiler from dropping the blocks */

/* Frees a 4 MiB block (mmapped under any threshold), then reports whether a
 * 512 KiB block allocated after it is mmapped. */
static bool mid_block_mmapped_after_big_free(void)
{
    g_sink = malloc(4u << 20);
    assert_non_null(g_sink);
    memset(g_sink, 1, 4u << 20);
    free(g_sink);
    malloc_trim(0); /* no free memory left that could serve the next block */
    size_t before = mallinfo2().hblks;
    g_sink = malloc(512u << 10);
    assert_non_null(g_sink);
    memset(g_sink, 1, 512u << 10);
    size_t after = mallinfo2().hblks;
    free(g_sink);
    g_sink = NULL;
    return after == before + 1;
}
#endif

static void glibc_moves_big_blocks_into_arenas_by_default(void **state)
{
    (void)state;
#if defined(EC_ASAN)
    print_message("AddressSanitizer's allocator is not glibc's: nothing to check\n");
    skip();
#else
    assert_false(mid_block_mmapped_after_big_free());
#endif
}

static void mem_init_keeps_them_mmapped(void **state)
{
    (void)state;
#if defined(EC_ASAN)
    print_message("AddressSanitizer's allocator is not glibc's: nothing to check\n");
    skip();
#else
    ec_mem_init();
    assert_true(mid_block_mmapped_after_big_free());
#endif
}

int main(void)
{
    /* In this order: the first runs before ec_mem_init changes the process. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(glibc_moves_big_blocks_into_arenas_by_default),
        cmocka_unit_test(mem_init_keeps_them_mmapped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
