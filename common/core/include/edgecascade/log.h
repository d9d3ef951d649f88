/* Line-oriented logging to stderr: "2026-11-29T07:00:00.123Z router info: text".
 * Secrets never reach here: config marks them sensitive and nothing prints them. */
#ifndef EC_LOG_H
#define EC_LOG_H

typedef enum { EC_LOG_ERROR = 0, EC_LOG_WARN, EC_LOG_INFO, EC_LOG_DEBUG } ec_log_level;

void ec_log_init(const char *component, ec_log_level level);
void ec_log_set_level(ec_log_level level);
int ec_log_level_parse(const char *s, ec_log_level *out); /* 0 on success */
void ec_log(ec_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ec_log_error(...) ec_log(EC_LOG_ERROR, __VA_ARGS__)
#define ec_log_warn(...)  ec_log(EC_LOG_WARN, __VA_ARGS__)
#define ec_log_info(...)  ec_log(EC_LOG_INFO, __VA_ARGS__)
#define ec_log_debug(...) ec_log(EC_LOG_DEBUG, __VA_ARGS__)

#endif
