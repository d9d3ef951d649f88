/* Redaction: masks personal data in text before it leaves the device.
 *
 * Built-in patterns (privacy.email, .phone, .ip) and the operator's own
 * (privacy.patterns, POSIX extended regular expressions, typically serial
 * numbers or asset tags) are replaced by typed placeholders: [EMAIL], [PHONE],
 * [IP], [SERIAL] (or the pattern's label). The router runs it on every prompt
 * it sends to a cloud tier, including shadow calls and replays of the offline
 * queue; local tiers get the original.
 *
 * The built-ins are deliberately narrow so ordinary plant text survives:
 * version numbers (3.2.1), times (12:30:45), dates (2024-05-01), measurements
 * (25.04 mm) and part numbers stay as they are. Phone numbers are masked in
 * international form (+49 30 1234567) and the 3-3-4 form (555-123-4567,
 * (555) 123-4567); other local forms need a pattern. A built-in match must
 * stand alone (no letter or digit glued to either side); operator patterns
 * match exactly as written.
 *
 * Thread safety: ec_redact may run on many threads at once;
 * ec_redactor_configure swaps the pattern set under a lock (for a reload) and
 * leaves the old set in place when the new one does not compile. */
#ifndef EC_REDACT_H
#define EC_REDACT_H

#include <stdbool.h>
#include <stddef.h>
#include "edgecascade/config.h"
#include "edgecascade/err.h"

typedef struct ec_redactor ec_redactor;

/* Compiles cfg's privacy.* patterns. */
ec_err ec_redactor_create(ec_redactor **out, const ec_config *cfg, ec_error *err);
/* Replaces the pattern set with cfg's; on error the old set stays. */
ec_err ec_redactor_configure(ec_redactor *r, const ec_config *cfg, ec_error *err);
void ec_redactor_destroy(ec_redactor *r);

/* Whether the pass does anything (privacy.redact on and some pattern set). */
bool ec_redactor_active(ec_redactor *r);

/* Masks what the patterns find in text. Returns the number of spans masked;
 * *out is then a new heap string (the caller frees it), or NULL when nothing
 * was found. -1 when out of memory (*out NULL): the caller must then not send
 * the text anywhere. */
int ec_redact(ec_redactor *r, const char *text, char **out);

#endif
