/* The arrival journal: each query as it arrived, written on Paho's thread
 * before the message is acknowledged to the broker, until its decision is in
 * the decision log. After a crash, what is left and not decided is run again,
 * so a `kill -9` of the router loses no query and answers none twice.
 *
 * Files of its own beside the decision log: for a decision log x.db,
 * x.arrivals-0 and x.arrivals-1 (two segments; an arrival is one record
 * appended to the active one) and x.arrivals.lock (held while a router runs:
 * one router per journal). Not SQLite: one append per query instead of a
 * transaction, and never behind the decision writer's batch (design and
 * crash argument: journal.c; format: journal_file.h). A journal an earlier
 * build left in SQLite (x.arrivals.db) is moved over at open, ids kept.
 *
 * A decision row carries its journal id and the journal's arrival time
 * (decisions.journal_id, decisions.ts_ms), so a crash between the decision's
 * commit and the journal's "done" is recognised at start (ec_store_decided)
 * rather than run twice.
 *
 * Duplicates: a redelivery (MQTT DUP) of one of the last 4,096 messages, or
 * of one found in the journal at start (same payload, Response Topic and
 * Correlation Data), is not journaled again (why that suffices:
 * journal_internal.h).
 *
 * Durability as SQLite's WAL with synchronous=NORMAL: a crash of the process
 * loses nothing written; a power cut may lose the last moments' records,
 * never older ones. Thread-safe (one lock). */
#ifndef EC_JOURNAL_H
#define EC_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include "edgecascade/err.h"
#include "edgecascade/mqtt.h"

typedef struct ec_journal ec_journal;

/* The journal's name for a decision log at store_path: "x.db" -> "x.arrivals"
 * (its files add "-0", "-1", ".lock"), anything else gets ".arrivals"
 * appended; ":memory:" stays in memory. Returns false when it (and those
 * suffixes) do not fit in n bytes. */
bool ec_journal_path(const char *store_path, char *out, size_t n);

ec_err ec_journal_open(ec_journal **out, const char *store_path, ec_error *err);
void ec_journal_close(ec_journal *j);

/* Journals m: sets m->tag (the journal id) and m->tag_ms (arrival, epoch ms).
 * A redelivery already journaled gets m->tag = -1 and is not journaled again. */
ec_err ec_journal_add(ec_journal *j, ec_mqtt_msg *m, ec_error *err);

/* Journals a tier's reply to the query journaled as of_query (its tag), so a
 * paid answer the router took in before a crash is not lost with it: at
 * start it comes back with m->tag_of set, and it is deleted with its query's
 * row (ec_journal_done). Duplicates as for ec_journal_add. */
ec_err ec_journal_add_reply(ec_journal *j, ec_mqtt_msg *m, int64_t of_query, ec_error *err);
/* Whether m is the broker's redelivery (DUP) of a message among the recent
 * arrivals or those found in the journal at start, journaled or not; m is
 * remembered either way, nothing is written. For the messages not worth a
 * record (a reply no query waits for), which must still be taken once. */
bool ec_journal_seen(ec_journal *j, const ec_mqtt_msg *m);
/* Every journaled message, oldest first, rebuilt as an ec_mqtt_msg with tag
 * and tag_ms set; fn takes ownership. */
typedef void (*ec_journal_fn)(void *ctx, ec_mqtt_msg *m);
ec_err ec_journal_each(ec_journal *j, ec_journal_fn fn, void *ctx, size_t *count, ec_error *err);

/* The queries whose decisions are committed, and the replies journaled for
 * them, are done: one record appended. Also starts a new segment when due,
 * so that work (an fdatasync, a copy of what is undecided) never lands on the
 * thread that journals. */
ec_err ec_journal_done(ec_journal *j, const int64_t *ids, size_t n, ec_error *err);

/* Queries (and paid replies) in the journal not yet decided. */
ec_err ec_journal_count(ec_journal *j, uint64_t *out, ec_error *err);

/* For tools, read-only, while the router runs: the undecided queries in the
 * journal beside the decision log at store_path (with those an earlier
 * build's SQLite journal still holds) and the oldest one's arrival (epoch ms,
 * 0 when none). No journal yet: 0. */
ec_err ec_journal_peek(const char *store_path, uint64_t *rows, uint64_t *oldest_ms, ec_error *err);

#endif
