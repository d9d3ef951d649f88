/* The dashboard in a real headless browser. Starts the stack with the
 * integration harness (real Mosquitto, the simulator, router + local + relay,
 * the router's HTTP server on a free port), answers a few queries, then runs
 * dashboard.test.js under node (playwright-core driving /usr/bin/chromium),
 * which checks the page against /api/stats, sends more queries through the
 * CLI and saves a screenshot: build/tests/artefacts/dashboard.png. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static const char *script =
    "{\"models\": {\n"
    "  \"llama3.2-1b\": {\"kind\": \"local\", \"default_logprob\": -0.9},\n"
    "  \"gpt-4o-mini\": {\"kind\": \"cloud\", \"default_logprob\": -0.05,\n"
    "                   \"require_key\": \"sk-test-not-a-real-key\"}},\n"
    " \"rules\": [\n"
    "  {\"match\": \"tolerance\", \"model\": \"llama3.2-1b\",\n"
    "   \"answer\": \"PASS: within tolerance.\", \"logprob\": -0.02},\n"
    "  {\"match\": \"vibration\", \"model\": \"llama3.2-1b\",\n"
    "   \"answer\": \"Maybe the motor is hot.\", \"logprob\": -1.2},\n"
    "  {\"match\": \"vibration\", \"model\": \"gpt-4o-mini\",\n"
    "   \"answer\": \"Likely bearing wear; inspect bearings and lubrication.\", \"logprob\": "
    "-0.03}\n"
    " ]}\n";

static void ask(ech *h, const char *prompt, const char *tier)
{
    ec_result r = {0};
    assert_int_equal(ech_ask(h, prompt, NULL, &r, 10000), 0);
    assert_null(r.error.code);
    assert_string_equal(r.tier, tier);
    ec_result_clear(&r);
}

static void dashboard_in_chromium(void **state)
{
    (void)state;
    if (access("/usr/bin/chromium", X_OK) != 0)
        fail_msg("/usr/bin/chromium is missing: run scripts/deps.sh (Debian package chromium)");
    char js[600], mods[600];
    snprintf(js, sizeof(js), "%s/dashboard.test.js", EC_BROWSER_DIR);
    snprintf(mods, sizeof(mods), "%s/node_modules/playwright-core", EC_BROWSER_DIR);
    if (access(mods, R_OK) != 0)
        fail_msg("%s is missing: the ctest fixture browser.npm_ci installs it (npm ci)", mods);

    ech h;
    ech_init(&h, "dashboard");
    char path[600];
    snprintf(path, sizeof(path), "%s/script.json", h.dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(script, fp);
    fclose(fp);
    ech_start_broker(&h);
    ech_start_sim(&h, path);
    int port = ech_free_port();
    char extra[200];
    snprintf(extra, sizeof(extra), "stats:\n  interval_s: 1\nhttp:\n  port: %d\n", port);
    ech_write_config(&h, extra);
    ech_start_services(&h);
    ech_connect_client(&h);
    ask(&h, "Is 25.04 mm within tolerance?", "local");
    ask(&h, "Is 24.98 mm within tolerance?", "local");
    ask(&h, "Is 25.01 mm within tolerance?", "local");
    ask(&h, "Motor vibration is 12 mm/s, what now?", "cloud");

    mkdir(EC_ARTEFACTS_DIR, 0755);
    char shot[600], url[64], cli[600];
    snprintf(shot, sizeof(shot), "%s/dashboard.png", EC_ARTEFACTS_DIR);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    snprintf(cli, sizeof(cli), "%s/edgecascade", EC_BIN_DIR);
    unlink(shot);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("EC_DASH_URL", url, 1);
        setenv("EC_CLI", cli, 1);
        setenv("EC_CONFIG", h.config, 1);
        setenv("EC_SCREENSHOT", shot, 1);
        if (chdir(EC_BROWSER_DIR) != 0)
            _exit(126);
        execlp("node", "node", js, (char *)NULL);
        perror("node");
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok)
        ech_dump_logs(&h);
    ech_teardown(&h);
    if (!ok)
        fail_msg("dashboard.test.js failed (status %d); see its output above", status);

    /* the artefact: a PNG of a real rendering, not an empty page */
    struct stat st;
    assert_int_equal(stat(shot, &st), 0);
    assert_true(st.st_size > 20 * 1024);
    unsigned char sig[8] = {0};
    fp = fopen(shot, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(sig, 1, 8, fp), 8);
    fclose(fp);
    assert_memory_equal(sig, "\x89PNG\r\n\x1a\n", 8);
    printf("screenshot: %s (%lld bytes)\n", shot, (long long)st.st_size);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(dashboard_in_chromium)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
