/* Unit tests for the interaction part of store/: durable approvals and user
 * messages (SQLite backend), including rows tampered with behind its back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "common/json.h"
#include "common/util.h"
#include "store/store.h"
#include "store_downgrade.h"

struct fixture {
	char dir[64];
	char path[128];
	struct store *s;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/agentd-storeix-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	f->s = store_close(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void
tamper(struct fixture *f, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void
create(struct fixture *f, const char *run, int64_t seq, int64_t expires_ms)
{
	cleanup_json json_t *args = json_pack("{s:s}", "url", "http://x/");
	cleanup_json json_t *approvers = json_pack("[s]", "alice");
	struct store_approval a = {
	    .run = (char *)run,
	    .seq = seq,
	    .tool = "http.request",
	    .args = args,
	    .rule = "api-write",
	    .approvers = approvers,
	    .reason = "writes need a human",
	    .expires_ms = expires_ms,
	};
	assert_int_equal(store_approval_create(f->s, &a), 0);
}

static void
test_approval_lifecycle(void **state)
{
	struct fixture *f = *state;
	struct store_approval a = {0};
	cleanup_json json_t *edited = json_pack("{s:s}", "url", "http://y/");

	create(f, "r1", 3, 0);
	/* First writer wins on (run, seq). */
	{
		cleanup_json json_t *args = json_object();
		struct store_approval b = {.run = "r1", .seq = 3, .tool = "fs.read", .args = args};
		assert_int_equal(store_approval_create(f->s, &b), -EEXIST);
	}
	assert_int_equal(store_approval_get(f->s, "r1", 3, &a), 0);
	assert_string_equal(a.tool, "http.request");
	assert_string_equal(a.rule, "api-write");
	assert_string_equal(a.reason, "writes need a human");
	assert_string_equal(json_string_value(json_object_get(a.args, "url")), "http://x/");
	assert_int_equal(json_array_size(a.approvers), 1);
	assert_int_equal(a.status, STORE_APPROVAL_PENDING);
	assert_string_equal(a.decided_by, "");
	assert_null(a.edited_args);
	assert_true(a.created_ms > 0);
	store_approval_clear(&a);

	assert_int_equal(store_approval_get(f->s, "r1", 4, &a), -ENOENT);
	assert_int_equal(
	    store_approval_decide(f->s, "r1", 4, true, "alice", NULL, NULL, STORE_SCOPE_ONCE),
	    -ENOENT);
	/* Edited args only with an approval. */
	assert_int_equal(
	    store_approval_decide(f->s, "r1", 3, false, "alice", NULL, edited, STORE_SCOPE_ONCE),
	    -EINVAL);
	assert_int_equal(
	    store_approval_decide(f->s, "r1", 3, true, "alice", "ok", edited, STORE_SCOPE_RUN), 0);
	assert_int_equal(
	    store_approval_decide(f->s, "r1", 3, false, "bob", NULL, NULL, STORE_SCOPE_ONCE),
	    -EALREADY);
	assert_int_equal(store_approval_get(f->s, "r1", 3, &a), 0);
	assert_int_equal(a.status, STORE_APPROVAL_APPROVED);
	assert_string_equal(a.decided_by, "alice");
	assert_string_equal(a.comment, "ok");
	assert_true(a.decided_ms > 0);
	assert_int_equal(a.scope, STORE_SCOPE_RUN);
	assert_string_equal(json_string_value(json_object_get(a.edited_args, "url")), "http://y/");
	store_approval_clear(&a);

	/* A denial. */
	create(f, "r1", 5, 0);
	assert_int_equal(
	    store_approval_decide(f->s, "r1", 5, false, "alice", "no", NULL, STORE_SCOPE_ONCE), 0);
	assert_int_equal(store_approval_get(f->s, "r1", 5, &a), 0);
	assert_int_equal(a.status, STORE_APPROVAL_DENIED);
	store_approval_clear(&a);

	/* The rerun an approval allows is started once, by one attempt. */
	assert_int_equal(store_approval_rerun(f->s, "r1", 3, 0), -EINVAL);
	assert_int_equal(store_approval_rerun(f->s, "r1", 5, 2), -EALREADY); /* denied */
	assert_int_equal(store_approval_rerun(f->s, "r1", 4, 2), -EALREADY); /* none */
	assert_int_equal(store_approval_rerun(f->s, "r1", 3, 2), 0);
	assert_int_equal(store_approval_rerun(f->s, "r1", 3, 3), -EALREADY);
	assert_int_equal(store_approval_get(f->s, "r1", 3, &a), 0);
	assert_int_equal(a.rerun_attempt, 2);
	store_approval_clear(&a);

	/* Asked again: the decided row at 3 becomes a new pending one. */
	{
		cleanup_json json_t *args = json_pack("{s:s}", "url", "http://z/");
		struct store_approval b = {.run = "r1",
					   .seq = 3,
					   .tool = "fs.write",
					   .args = args,
					   .rule = "on_unknown",
					   .reason = "again",
					   .expires_ms = INT64_C(1) << 50};
		assert_int_equal(store_approval_reask(f->s, &b), 0);
		assert_int_equal(store_approval_reask(f->s, &b), -ENOENT); /* pending */
		b.seq = 4;
		assert_int_equal(store_approval_reask(f->s, &b), -ENOENT); /* none */
		b.seq = 3;
		b.tool = "";
		assert_int_equal(store_approval_reask(f->s, &b), -EINVAL);
	}
	assert_int_equal(store_approval_get(f->s, "r1", 3, &a), 0);
	assert_int_equal(a.status, STORE_APPROVAL_PENDING);
	assert_string_equal(a.tool, "fs.write");
	assert_string_equal(a.rule, "on_unknown");
	assert_string_equal(a.reason, "again");
	assert_string_equal(json_string_value(json_object_get(a.args, "url")), "http://z/");
	assert_int_equal(json_array_size(a.approvers), 0);
	assert_string_equal(a.decided_by, "");
	assert_string_equal(a.comment, "");
	assert_int_equal(a.decided_ms, 0);
	assert_int_equal(a.expires_ms, INT64_C(1) << 50);
	assert_int_equal(a.scope, STORE_SCOPE_ONCE);
	assert_null(a.edited_args);
	assert_int_equal(a.rerun_attempt, 0);
	store_approval_clear(&a);
	assert_int_equal(store_approval_rerun(f->s, "r1", 3, 2), -EALREADY); /* pending */
	assert_int_equal(
	    store_approval_decide(f->s, "r1", 3, false, "bob", NULL, NULL, STORE_SCOPE_ONCE), 0);
}

static void
test_approval_expiry(void **state)
{
	struct fixture *f = *state;
	struct store_approval a = {0};

	/* Already past its expiry: deciding records the expiry instead. */
	create(f, "r1", 1, 1);
	assert_int_equal(
	    store_approval_decide(f->s, "r1", 1, true, "alice", NULL, NULL, STORE_SCOPE_ONCE),
	    -ETIMEDOUT);
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), 0);
	assert_int_equal(a.status, STORE_APPROVAL_EXPIRED);
	assert_string_equal(a.decided_by, "expiry");
	store_approval_clear(&a);
	assert_int_equal(
	    store_approval_decide(f->s, "r1", 1, true, "alice", NULL, NULL, STORE_SCOPE_ONCE),
	    -EALREADY);
	/* Explicit expiry of a pending one; a far expiry does not get in the way. */
	create(f, "r1", 2, agd_wall_ms() + 3600000);
	assert_int_equal(store_approval_expire(f->s, "r1", 2), 0);
	assert_int_equal(store_approval_expire(f->s, "r1", 2), -EALREADY);
	assert_int_equal(store_approval_expire(f->s, "r1", 9), -ENOENT);
	create(f, "r1", 3, agd_wall_ms() + 3600000);
	assert_int_equal(
	    store_approval_decide(f->s, "r1", 3, true, "alice", NULL, NULL, STORE_SCOPE_ONCE), 0);
}

struct seen {
	int n;
	int64_t seqs[8];
	char runs[8][16];
};

static int
collect(const struct store_approval *a, void *ud)
{
	struct seen *s = ud;

	if (s->n < 8) {
		s->seqs[s->n] = a->seq;
		snprintf(s->runs[s->n], sizeof(s->runs[0]), "%s", a->run);
	}
	s->n++;
	return 0;
}

static void
test_approval_foreach(void **state)
{
	struct fixture *f = *state;
	struct seen s = {0};

	create(f, "r1", 1, 0);
	create(f, "r2", 1, 0);
	create(f, "r1", 2, 0);
	{
		cleanup_json json_t *args = json_object();
		struct store_approval open = {
		    .run = "r3", .seq = 7, .tool = "fs.write", .args = args};
		assert_int_equal(store_approval_create(f->s, &open), 0); /* approvers [] */
	}
	assert_int_equal(
	    store_approval_decide(f->s, "r1", 2, false, "alice", NULL, NULL, STORE_SCOPE_ONCE), 0);
	assert_int_equal(store_approval_foreach(f->s, NULL, NULL, NULL, collect, &s), 0);
	assert_int_equal(s.n, 4);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_approval_foreach(f->s, "r1", NULL, NULL, collect, &s), 0);
	assert_int_equal(s.n, 2);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_approval_foreach(f->s, NULL, "pending", NULL, collect, &s), 0);
	assert_int_equal(s.n, 3);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_approval_foreach(f->s, "r1", "pending", NULL, collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.seqs[0], 1);
	/* bob is named nowhere, but r3's approval is open to anyone. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_approval_foreach(f->s, NULL, NULL, "bob", collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.runs[0], "r3");
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_approval_foreach(f->s, NULL, "pending", "alice", collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(store_approval_foreach(f->s, NULL, "bogus", NULL, collect, &s), -EINVAL);
}

static void
test_approval_tampered(void **state)
{
	struct fixture *f = *state;
	struct store_approval a = {0};
	struct seen s = {0};

	create(f, "r1", 1, 0);
	tamper(f, "UPDATE approvals SET status = 'maybe'");
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), -EBADMSG);
	tamper(f, "UPDATE approvals SET status = 'approved'"); /* approved by nobody */
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), -EBADMSG);
	tamper(f, "UPDATE approvals SET status = 'pending', args = '[1]'");
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), -EBADMSG);
	tamper(f, "UPDATE approvals SET args = '{\"a\":1,\"a\":2}'");
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), -EBADMSG);
	tamper(f, "UPDATE approvals SET args = '{}', approvers = '[1]'");
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), -EBADMSG);
	tamper(f, "UPDATE approvals SET approvers = '[]', expires_ms = 'soon'");
	assert_int_equal(store_approval_foreach(f->s, NULL, NULL, NULL, collect, &s), -EBADMSG);
	tamper(f, "UPDATE approvals SET expires_ms = 0, tool = ''");
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), -EBADMSG);
	tamper(f, "UPDATE approvals SET tool = 'fs.read', rerun_attempt = 1"); /* pending */
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), -EBADMSG);
	tamper(f, "UPDATE approvals SET status = 'approved', decided_by = 'a', decided_ms = 1, "
		  "rerun_attempt = -1");
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), -EBADMSG);
	tamper(f, "UPDATE approvals SET rerun_attempt = 'x'");
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), -EBADMSG);
	tamper(f, "UPDATE approvals SET rerun_attempt = 1");
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), 0);
	assert_int_equal(a.rerun_attempt, 1);
	store_approval_clear(&a);
	tamper(f, "UPDATE approvals SET status = 'pending', decided_by = '', decided_ms = 0, "
		  "rerun_attempt = 0");
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), 0);
	store_approval_clear(&a);
}

/* A version 3 file (no rerun_attempt) is upgraded on open: its approved
 * row reads back with no rerun started, and one can be recorded. */
static void
test_approval_upgrade_v3(void **state)
{
	struct fixture *f = *state;
	struct store_approval a = {0};

	create(f, "r1", 1, 0);
	assert_int_equal(
	    store_approval_decide(f->s, "r1", 1, true, "alice", NULL, NULL, STORE_SCOPE_ONCE), 0);
	f->s = store_close(f->s);
	/* The version 3 file: version 5's journal indexes undone too. */
	tamper(f, STORE_V8_TO_V7 STORE_V7_TO_V6 STORE_V6_TO_V5
	       "ALTER TABLE approvals DROP COLUMN rerun_attempt; DROP INDEX journal_by_owner;"
	       "ALTER TABLE journal DROP COLUMN owner_uid;"
	       "CREATE UNIQUE INDEX journal_by_ord ON journal(run, ord);"
	       "CREATE INDEX journal_by_started ON journal(run, started_ms);"
	       "PRAGMA user_version = 3");
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), 0);
	assert_int_equal(a.status, STORE_APPROVAL_APPROVED);
	assert_int_equal(a.rerun_attempt, 0);
	store_approval_clear(&a);
	assert_int_equal(store_approval_rerun(f->s, "r1", 1, 1), 0);
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), 0);
	assert_int_equal(a.rerun_attempt, 1);
	store_approval_clear(&a);
}

static void
test_messages(void **state)
{
	struct fixture *f = *state;
	struct store_message *m = NULL;
	size_t n = 99;
	int64_t id1 = 0, id2 = 0, id3 = 0, id4 = 0;

	assert_int_equal(store_message_take_queued(f->s, "r1", 4, &m, &n), 0);
	assert_null(m);
	assert_int_equal(n, 0);
	assert_int_equal(store_message_add(f->s, "r1", "first", "queue", &id1), 0);
	assert_int_equal(store_message_add(f->s, "r2", "other run", "queue", &id2), 0);
	assert_int_equal(store_message_add(f->s, "r1", "stop that", "interrupt", &id3), 0);
	assert_int_equal(store_message_add(f->s, "r1", "later", "reject", &id4), 0);
	assert_true(id1 < id2 && id2 < id3 && id3 < id4);
	assert_int_equal(store_message_add(f->s, "r1", "x", "shout", NULL), -EINVAL);
	assert_int_equal(store_message_add(f->s, "r1", "\xff\xfe", "queue", NULL), -EINVAL);
	assert_int_equal(store_message_reject(f->s, "r1", id4), 0);
	assert_int_equal(store_message_reject(f->s, "r1", id4), -EALREADY);
	assert_int_equal(store_message_reject(f->s, "r1", 999), -ENOENT);

	assert_int_equal(store_message_take_queued(f->s, "r1", 4, &m, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(m[0].id, id1);
	assert_string_equal(m[0].text, "first");
	assert_string_equal(m[0].mode, "queue");
	assert_int_equal(m[0].status, STORE_MSG_DELIVERED);
	assert_int_equal(m[0].delivered_seq, 4);
	assert_string_equal(m[1].text, "stop that");
	assert_string_equal(m[1].mode, "interrupt");
	store_messages_free(m, n);
	/* Taken once only. */
	assert_int_equal(store_message_take_queued(f->s, "r1", 5, &m, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_message_reject(f->s, "r1", id1), -EALREADY);
}

struct mseen {
	int n;
	char status[8][12];
	int64_t seq[8];
};

static int
mcollect(const struct store_message *m, void *ud)
{
	struct mseen *s = ud;

	if (s->n < 8) {
		snprintf(s->status[s->n], sizeof(s->status[0]), "%s",
			 store_msg_status_name(m->status));
		s->seq[s->n] = m->delivered_seq;
	}
	s->n++;
	return 0;
}

static void
test_messages_foreach_tampered(void **state)
{
	struct fixture *f = *state;
	struct store_message *m = NULL;
	struct mseen s = {0};
	size_t n = 0;

	assert_int_equal(store_message_add(f->s, "r1", "a", "queue", NULL), 0);
	assert_int_equal(store_message_add(f->s, "r1", "b", "reject", NULL), 0);
	assert_int_equal(store_message_take_queued(f->s, "r1", 2, &m, &n), 0);
	store_messages_free(m, n);
	assert_int_equal(store_message_add(f->s, "r1", "c", "queue", NULL), 0);
	assert_int_equal(store_message_foreach(f->s, "r1", mcollect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.status[0], "delivered");
	assert_int_equal(s.seq[0], 2);
	assert_string_equal(s.status[2], "queued");
	assert_int_equal(s.seq[2], 0);

	tamper(f, "UPDATE messages SET delivered_seq = 7 WHERE text = 'c'");
	assert_int_equal(store_message_take_queued(f->s, "r1", 3, &m, &n), -EBADMSG);
	tamper(f, "UPDATE messages SET delivered_seq = 0, mode = 'yell' WHERE text = 'c'");
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_message_foreach(f->s, "r1", mcollect, &s), -EBADMSG);
	tamper(f, "UPDATE messages SET mode = 'queue', text = CAST(x'61006200' AS TEXT) "
		  "WHERE mode = 'yell'");
	assert_int_equal(store_message_take_queued(f->s, "r1", 3, &m, &n), -EBADMSG);
	tamper(f, "UPDATE messages SET text = 'c' WHERE id = 3");
	assert_int_equal(store_message_take_queued(f->s, "r1", 3, &m, &n), 0);
	assert_int_equal(n, 1);
	store_messages_free(m, n);
}

static void
test_list_deliver_discard(void **state)
{
	struct fixture *f = *state;
	struct store_message *m = NULL;
	struct store_approval a = {0};
	size_t n = 0;
	int64_t id1 = 0, id2 = 0;

	assert_int_equal(store_message_list_queued(f->s, "r1", &m, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_message_add(f->s, "r1", "a", "queue", &id1), 0);
	assert_int_equal(store_message_add(f->s, "r1", "b", "restart", &id2), 0);
	assert_int_equal(store_message_list_queued(f->s, "r1", &m, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(m[1].mode, "restart");
	store_messages_free(m, n);
	/* Listing changes nothing; delivering one leaves the other queued. */
	assert_int_equal(store_message_deliver(f->s, "r1", id2, 9), 0);
	assert_int_equal(store_message_deliver(f->s, "r1", id2, 9), -EALREADY);
	assert_int_equal(store_message_deliver(f->s, "r2", id1, 9), -ENOENT);
	assert_int_equal(store_message_list_queued(f->s, "r1", &m, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].id, id1);
	store_messages_free(m, n);

	create(f, "r1", 1, 0);
	create(f, "r1", 2, 0);
	create(f, "r1", 3, 0);
	create(f, "r2", 3, 0);
	assert_int_equal(store_approval_discard(f->s, "r1", 1), 0);
	assert_int_equal(store_approval_get(f->s, "r1", 1, &a), 0);
	store_approval_clear(&a);
	assert_int_equal(store_approval_get(f->s, "r1", 2, &a), -ENOENT);
	assert_int_equal(store_approval_get(f->s, "r1", 3, &a), -ENOENT);
	assert_int_equal(store_approval_get(f->s, "r2", 3, &a), 0);
	store_approval_clear(&a);
	/* The seq is free again. */
	create(f, "r1", 2, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_approval_lifecycle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_approval_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_approval_foreach, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_approval_tampered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_approval_upgrade_v3, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_messages_foreach_tampered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_deliver_discard, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
