#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/util.h"

/* ec_fmt_2f must write what printf's "%.2f" writes, byte for byte. */
static void check(double v)
{
    char want[512], got[512];
    snprintf(want, sizeof(want), "%.2f", v);
    ec_fmt_2f(got, sizeof(got), v);
    if (strcmp(want, got) != 0)
        fail_msg("%.17g: printf \"%s\", ec_fmt_2f \"%s\"", v, want, got);
}

static void fmt_2f_matches_printf_at_the_edges(void **state)
{
    (void)state;
    /* Exact ties (half to even), near ties either side, signs, zeros,
     * values that round up into the next integer, and the fallback. */
    const double v[] = {0,          -0.0,   0.125,   0.375,   0.625,  0.875,    0.005,
                        0.015,      0.025,  1.005,   2.675,   0.285,  0.995,    0.999,
                        9.995,      99.995, -0.001,  -0.005,  -0.125, -2.675,   1e-300,
                        -1e-300,    0.7,    0.69999, 0.70001, 1.0,    123.456,  1e14 + 0.125,
                        999999.995, 1e15,   -1e15,   1e300,   NAN,    INFINITY, -INFINITY,
                        0.35,       0.45,   0.55,    4.35,    8.345,  1.115};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        check(v[i]);
    for (int k = -200000; k <= 200000; k++) {
        check(k / 1000.0); /* every third decimal place near a tie */
        check(k / 1000.0 + 0.0005);
        check(k / 8.0);
    }
}

static void fmt_2f_matches_printf_on_random_doubles(void **state)
{
    (void)state;
    srand(17);
    for (int i = 0; i < 300000; i++) {
        double unit = (double)rand() / RAND_MAX;
        check(unit);                                /* confidences, thresholds */
        check((unit - 0.5) * pow(10, rand() % 17)); /* up to 1e16: both paths */
        uint64_t bits = ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 11) ^ (uint64_t)rand();
        double any;
        memcpy(&any, &bits, sizeof(any)); /* any bit pattern, NaNs and subnormals too */
        check(any);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fmt_2f_matches_printf_at_the_edges),
        cmocka_unit_test(fmt_2f_matches_printf_on_random_doubles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
