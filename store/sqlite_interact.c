/* SQLite backend of the interaction part of store/store.h: durable approvals
 * and user messages (schema version 2; docs/store.md, docs/interaction.md).
 *
 * Same design as sqlite.c: statements prepared once (here on first use, so a
 * store that never sees an approval pays nothing), writes in BEGIN IMMEDIATE,
 * every row read back validated. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "store/sqlite-internal.h"
#include "store/store.h"

static const char schema_v2[] = "CREATE TABLE approvals ("
				" run TEXT NOT NULL,"
				" seq INTEGER NOT NULL,"
				" tool TEXT NOT NULL,"
				" args TEXT NOT NULL,"
				" rule TEXT NOT NULL,"
				" approvers TEXT NOT NULL,"
				" reason TEXT NOT NULL,"
				" created_ms INTEGER NOT NULL,"
				" expires_ms INTEGER NOT NULL,"
				" status TEXT NOT NULL,"
				" decided_by TEXT NOT NULL,"
				" decided_ms INTEGER NOT NULL,"
				" comment TEXT NOT NULL,"
				" edited_args TEXT,"
				" scope TEXT NOT NULL,"
				" PRIMARY KEY (run, seq));"
				"CREATE INDEX approvals_by_status ON approvals(status, created_ms);"
				"CREATE TABLE messages ("
				" id INTEGER PRIMARY KEY AUTOINCREMENT,"
				" run TEXT NOT NULL,"
				" text TEXT NOT NULL,"
				" mode TEXT NOT NULL,"
				" status TEXT NOT NULL,"
				" created_ms INTEGER NOT NULL,"
				" delivered_ms INTEGER NOT NULL,"
				" delivered_seq INTEGER NOT NULL);"
				"CREATE INDEX messages_by_run ON messages(run, status, id);";

int
store_sqlite_migrate_v2(sqlite3 *db)
{
	return store_sqlite_map_rc(sqlite3_exec(db, schema_v2, NULL, NULL, NULL));
}

/* v4: the attempt that started an approved rerun (0: none started). */
int
store_sqlite_migrate_v4(sqlite3 *db)
{
	return store_sqlite_map_rc(sqlite3_exec(
	    db, "ALTER TABLE approvals ADD COLUMN rerun_attempt INTEGER NOT NULL DEFAULT 0;", NULL,
	    NULL, NULL));
}

enum ix_stmt {
	IX_A_INSERT,
	IX_A_GET,
	IX_A_DECIDE,
	IX_A_LIST,
	IX_A_DISCARD,
	IX_A_REASK,
	IX_A_RERUN,
	IX_M_INSERT,
	IX_M_QUEUED,
	IX_M_DELIVER,
	IX_M_GET_STATUS,
	IX_M_REJECT,
	IX_M_LIST,
	IX_DATA_VERSION,
	IX__MAX,
};

#define A_COLS                                                                                     \
	"run, seq, tool, args, rule, approvers, reason, created_ms, expires_ms, status, "          \
	"decided_by, decided_ms, comment, edited_args, scope, rerun_attempt"
#define M_COLS "id, run, text, mode, status, created_ms, delivered_ms, delivered_seq"

static const char *const ix_sql[IX__MAX] = {
    [IX_A_INSERT] = "INSERT INTO approvals(" A_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
		    "?9, 'pending', '', 0, '', NULL, 'once', 0)",
    [IX_A_GET] = "SELECT " A_COLS " FROM approvals WHERE run = ?1 AND seq = ?2",
    [IX_A_DECIDE] = "UPDATE approvals SET status = ?3, decided_by = ?4, decided_ms = ?5, "
		    "comment = ?6, edited_args = ?7, scope = ?8 "
		    "WHERE run = ?1 AND seq = ?2 AND status = 'pending'",
    [IX_A_LIST] = "SELECT " A_COLS " FROM approvals WHERE (?1 IS NULL OR run = ?1) AND "
		  "(?2 IS NULL OR status = ?2) ORDER BY created_ms, rowid",
    [IX_A_DISCARD] = "DELETE FROM approvals WHERE run = ?1 AND seq > ?2",
    [IX_A_REASK] = "UPDATE approvals SET tool = ?3, args = ?4, rule = ?5, approvers = ?6, "
		   "reason = ?7, created_ms = ?8, expires_ms = ?9, status = 'pending', "
		   "decided_by = '', decided_ms = 0, comment = '', edited_args = NULL, "
		   "scope = 'once', rerun_attempt = 0 WHERE run = ?1 AND seq = ?2 AND "
		   "status != 'pending'",
    [IX_A_RERUN] = "UPDATE approvals SET rerun_attempt = ?3 WHERE run = ?1 AND seq = ?2 AND "
		   "status = 'approved' AND rerun_attempt = 0",
    [IX_M_INSERT] = "INSERT INTO messages(run, text, mode, status, created_ms, delivered_ms, "
		    "delivered_seq) VALUES (?1, ?2, ?3, 'queued', ?4, 0, 0)",
    [IX_M_QUEUED] = "SELECT " M_COLS " FROM messages WHERE run = ?1 AND status = 'queued' "
		    "ORDER BY id",
    [IX_M_DELIVER] = "UPDATE messages SET status = 'delivered', delivered_ms = ?3, "
		     "delivered_seq = ?4 WHERE run = ?1 AND id = ?2 AND status = 'queued'",
    [IX_M_GET_STATUS] = "SELECT status FROM messages WHERE run = ?1 AND id = ?2",
    [IX_M_REJECT] = "UPDATE messages SET status = 'rejected' "
		    "WHERE run = ?1 AND id = ?2 AND status = 'queued'",
    [IX_M_LIST] = "SELECT " M_COLS " FROM messages WHERE run = ?1 ORDER BY id",
    [IX_DATA_VERSION] = "PRAGMA data_version",
};

struct store_ix {
	sqlite3_stmt *stmt[IX__MAX];
	uint64_t msg_adds; /* messages added through this connection */
	/* PRAGMA data_version as last read, and when (monotonic ns). */
	uint64_t data_version;
	int64_t data_version_ns;
};

struct store_ix *
store_ix_free(struct store_ix *ix)
{
	if (!ix)
		return NULL;
	for (int i = 0; i < IX__MAX; i++)
		sqlite3_finalize(ix->stmt[i]);
	free(ix);
	return NULL;
}

/* The cached statement `id`, preparing the set on first use. */
static int
ix_stmt(struct store *s, enum ix_stmt id, sqlite3_stmt **ret)
{
	struct store_ix **pix = store_sqlite_ix(s);

	if (!*pix) {
		struct store_ix *ix = calloc(1, sizeof(*ix));
		if (!ix)
			return -ENOMEM;
		for (int i = 0; i < IX__MAX; i++) {
			int rc = sqlite3_prepare_v3(store_sqlite_db(s), ix_sql[i], -1,
						    SQLITE_PREPARE_PERSISTENT, &ix->stmt[i], NULL);
			/* A statement that does not fit the schema: not our file. */
			if (rc != SQLITE_OK) {
				store_ix_free(ix);
				return rc == SQLITE_ERROR ? -EBADMSG : store_sqlite_map_rc(rc);
			}
		}
		*pix = ix;
	}
	*ret = (*pix)->stmt[id];
	/* A write of its own: after the journal's held outcomes (store.h). */
	return sqlite3_stmt_readonly(*ret) ? 0 : store_sqlite_unhold(s);
}

/* Free text (reason, comment, message): at most max bytes of valid UTF-8. */
static bool
valid_text(const char *v, size_t max)
{
	if (!v || strnlen(v, max + 1) > max)
		return false;
	json_t *j = json_string(v); /* jansson checks the UTF-8 */
	bool ok = j != NULL;
	json_decref(j);
	return ok;
}

static bool
check_reason(const char *v)
{
	return valid_text(v, STORE_REASON_MAX);
}

static bool
check_message(const char *v)
{
	return valid_text(v, STORE_MESSAGE_MAX);
}

static bool
check_name(const char *v)
{
	return store_sqlite_valid_name(v, true);
}

static bool
check_tool(const char *v)
{
	return store_sqlite_valid_name(v, false);
}

/* ---- approvals ---- */

static const char *const approval_status_names[] = {"pending", "approved", "denied", "expired"};
static const char *const scope_names[] = {"once", "run", "always"};
static const char *const mode_names[] = {"queue", "interrupt", "restart", "reject"};
static const char *const msg_status_names[] = {"queued", "delivered", "rejected"};

static int
name_index(const char *const *names, size_t n, const char *v)
{
	for (size_t i = 0; v && i < n; i++)
		if (strcmp(names[i], v) == 0)
			return (int)i;
	return -1;
}

const char *
store_approval_status_name(enum store_approval_status st)
{
	if ((unsigned)st >= ARRAY_SIZE(approval_status_names))
		return "?";
	return approval_status_names[st];
}

const char *
store_approval_scope_name(enum store_approval_scope sc)
{
	if ((unsigned)sc >= ARRAY_SIZE(scope_names))
		return "?";
	return scope_names[sc];
}

int
store_approval_scope_parse(const char *name, enum store_approval_scope *ret)
{
	int i = name_index(scope_names, ARRAY_SIZE(scope_names), name);

	if (i < 0)
		return -EINVAL;
	*ret = (enum store_approval_scope)i;
	return 0;
}

const char *
store_msg_status_name(enum store_msg_status st)
{
	if ((unsigned)st >= ARRAY_SIZE(msg_status_names))
		return "?";
	return msg_status_names[st];
}

void
store_approval_clear(struct store_approval *a)
{
	if (!a)
		return;
	free(a->run);
	free(a->tool);
	json_decref(a->args);
	free(a->rule);
	json_decref(a->approvers);
	free(a->reason);
	free(a->decided_by);
	free(a->comment);
	json_decref(a->edited_args);
	memset(a, 0, sizeof(*a));
}

/* Approvers: an array of 1..256-byte names. */
static bool
valid_approvers(const json_t *v)
{
	size_t i;
	json_t *e;

	if (!json_is_array(v))
		return false;
	json_array_foreach(
	    v, i, e) if (!json_is_string(e) || json_string_length(e) == 0 ||
			 !store_sqlite_valid_name(json_string_value(e), false)) return false;
	return true;
}

static int
col_enum(sqlite3_stmt *st, int col, const char *const *names, size_t n, int *ret)
{
	const char *txt;

	if (sqlite3_column_type(st, col) != SQLITE_TEXT)
		return -EBADMSG;
	txt = (const char *)sqlite3_column_text(st, col);
	if (!txt)
		return -ENOMEM;
	if ((size_t)sqlite3_column_bytes(st, col) != strlen(txt))
		return -EBADMSG;
	int i = name_index(names, n, txt);
	if (i < 0)
		return -EBADMSG;
	*ret = i;
	return 0;
}

/* Read and validate one approvals row (columns as A_COLS). */
static int
read_approval(sqlite3_stmt *st, struct store_approval *ret)
{
	struct store_approval a = {0};
	int status = 0, scope = 0;
	int64_t rerun = 0;
	int r;

	r = store_sqlite_col_strdup(st, 0, STORE_ID_MAX, store_sqlite_valid_id, &a.run);
	if (r == 0)
		r = store_sqlite_col_int64(st, 1, 1, INT64_MAX, &a.seq);
	if (r == 0)
		r = store_sqlite_col_strdup(st, 2, STORE_NAME_MAX, check_tool, &a.tool);
	if (r == 0)
		r = store_sqlite_col_json(st, 3, &a.args);
	if (r == 0 && !json_is_object(a.args))
		r = -EBADMSG;
	if (r == 0)
		r = store_sqlite_col_strdup(st, 4, STORE_NAME_MAX, check_name, &a.rule);
	if (r == 0)
		r = store_sqlite_col_json(st, 5, &a.approvers);
	if (r == 0 && !valid_approvers(a.approvers))
		r = -EBADMSG;
	if (r == 0)
		r = store_sqlite_col_strdup(st, 6, STORE_REASON_MAX, check_reason, &a.reason);
	if (r == 0)
		r = store_sqlite_col_int64(st, 7, 0, INT64_MAX, &a.created_ms);
	if (r == 0)
		r = store_sqlite_col_int64(st, 8, 0, INT64_MAX, &a.expires_ms);
	if (r == 0)
		r = col_enum(st, 9, approval_status_names, ARRAY_SIZE(approval_status_names),
			     &status);
	if (r == 0)
		r = store_sqlite_col_strdup(st, 10, STORE_NAME_MAX, check_name, &a.decided_by);
	if (r == 0)
		r = store_sqlite_col_int64(st, 11, 0, INT64_MAX, &a.decided_ms);
	if (r == 0)
		r = store_sqlite_col_strdup(st, 12, STORE_REASON_MAX, check_reason, &a.comment);
	if (r == 0 && sqlite3_column_type(st, 13) != SQLITE_NULL) {
		r = store_sqlite_col_json(st, 13, &a.edited_args);
		if (r == 0 && !json_is_object(a.edited_args))
			r = -EBADMSG;
	}
	if (r == 0)
		r = col_enum(st, 14, scope_names, ARRAY_SIZE(scope_names), &scope);
	if (r == 0)
		r = store_sqlite_col_int64(st, 15, 0, INT_MAX, &rerun);
	if (r == 0) {
		a.status = (enum store_approval_status)status;
		a.scope = (enum store_approval_scope)scope;
		/* A pending row carries no decision; a decided one names who. */
		bool pending = a.status == STORE_APPROVAL_PENDING;
		if (pending != (a.decided_by[0] == '\0') || pending != (a.decided_ms == 0) ||
		    ((a.edited_args || rerun) && a.status != STORE_APPROVAL_APPROVED))
			r = -EBADMSG;
		a.rerun_attempt = (int)rerun;
	}
	if (r < 0) {
		store_approval_clear(&a);
		return r;
	}
	*ret = a;
	return 0;
}

/* Write a pending row from a's run, seq, tool, args, rule, approvers,
 * reason, created_ms and expires_ms with statement `id` (?1..?9 in that order). */
static int
approval_write(struct store *s, const struct store_approval *a, enum ix_stmt id)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	cleanup_free char *args = NULL, *approvers = NULL;
	cleanup_json json_t *empty = NULL;
	const char *reason;
	int r;

	if (!s || !a || !store_sqlite_valid_id(a->run) || a->seq <= 0 ||
	    !store_sqlite_valid_name(a->tool, false) || !json_is_object(a->args) ||
	    !store_sqlite_valid_name(a->rule ? a->rule : "", true) || a->created_ms < 0 ||
	    a->expires_ms < 0)
		return -EINVAL;
	reason = a->reason ? a->reason : "";
	if (!valid_text(reason, STORE_REASON_MAX))
		return -EINVAL;
	if (!a->approvers)
		empty = json_array();
	if (!valid_approvers(a->approvers ? a->approvers : empty))
		return -EINVAL;
	r = store_sqlite_json_to_text(a->args, &args);
	if (r == 0)
		r = store_sqlite_json_to_text(a->approvers ? a->approvers : empty, &approvers);
	if (r < 0)
		return r;
	r = ix_stmt(s, id, &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, a->run, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, a->seq);
	sqlite3_bind_text(st, 3, a->tool, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, args, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, a->rule ? a->rule : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, approvers, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, a->created_ms ? a->created_ms : agd_wall_ms());
	sqlite3_bind_int64(st, 9, a->expires_ms);
	return store_sqlite_step_done(st);
}

int
store_approval_create(struct store *s, const struct store_approval *a)
{
	return approval_write(s, a, IX_A_INSERT);
}

int
store_approval_reask(struct store *s, const struct store_approval *a)
{
	int r = approval_write(s, a, IX_A_REASK);

	if (r < 0)
		return r;
	return sqlite3_changes(store_sqlite_db(s)) == 1 ? 0 : -ENOENT;
}

int
store_approval_rerun(struct store *s, const char *run, int64_t seq, int attempt)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int r;

	if (attempt < 1)
		return -EINVAL;
	r = ix_stmt(s, IX_A_RERUN, &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_int(st, 3, attempt);
	r = store_sqlite_step_done(st);
	if (r < 0)
		return r;
	return sqlite3_changes(store_sqlite_db(s)) == 1 ? 0 : -EALREADY;
}

/* Read (run, seq) with the get statement; -ENOENT if missing. */
static int
approval_read(struct store *s, const char *run, int64_t seq, struct store_approval *ret)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int rc, r;

	r = ix_stmt(s, IX_A_GET, &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_sqlite_map_rc(rc);
	r = read_approval(st, ret);
	if (r < 0)
		return r;
	/* The row must be the one asked for. */
	if (strcmp(ret->run, run) != 0 || ret->seq != seq) {
		store_approval_clear(ret);
		return -EBADMSG;
	}
	return 0;
}

int
store_approval_get(struct store *s, const char *run, int64_t seq, struct store_approval *ret)
{
	if (!s || !ret || !store_sqlite_valid_id(run) || seq <= 0)
		return -EINVAL;
	return approval_read(s, run, seq, ret);
}

/* Write a decision on a row known to be pending inside the caller's tx. */
static int
approval_update(struct store *s, const char *run, int64_t seq, enum store_approval_status status,
		const char *by, const char *comment, const char *edited,
		enum store_approval_scope scope)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int r = ix_stmt(s, IX_A_DECIDE, &st);

	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_text(st, 3, approval_status_names[status], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, by, -1, SQLITE_STATIC);
	/* decided_ms 0 means pending: a decision is never at the epoch. */
	int64_t now = agd_wall_ms();
	sqlite3_bind_int64(st, 5, now > 0 ? now : 1);
	sqlite3_bind_text(st, 6, comment, -1, SQLITE_STATIC);
	if (edited)
		sqlite3_bind_text(st, 7, edited, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 7);
	sqlite3_bind_text(st, 8, scope_names[scope], -1, SQLITE_STATIC);
	r = store_sqlite_step_done(st);
	if (r < 0)
		return r;
	return sqlite3_changes(store_sqlite_db(s)) == 1 ? 0 : -EALREADY;
}

int
store_approval_decide(struct store *s, const char *run, int64_t seq, bool approve, const char *by,
		      const char *comment, const json_t *edited_args,
		      enum store_approval_scope scope)
{
	cleanup_tx struct store_tx tx = {0};
	cleanup_free char *edited = NULL;
	struct store_approval a = {0};
	int r;

	if (!comment)
		comment = "";
	if (!s || !store_sqlite_valid_id(run) || seq <= 0 || !store_sqlite_valid_name(by, false) ||
	    !valid_text(comment, STORE_REASON_MAX) || (unsigned)scope >= ARRAY_SIZE(scope_names) ||
	    (edited_args && (!approve || !json_is_object(edited_args))))
		return -EINVAL;
	if (edited_args) {
		r = store_sqlite_json_to_text(edited_args, &edited);
		if (r < 0)
			return r;
	}
	r = store_sqlite_tx_begin(s, &tx);
	if (r < 0)
		return r;
	r = approval_read(s, run, seq, &a);
	if (r < 0)
		return r;
	enum store_approval_status cur = a.status;
	int64_t expires = a.expires_ms;
	store_approval_clear(&a);
	if (cur != STORE_APPROVAL_PENDING)
		return -EALREADY;
	if (expires && agd_wall_ms() >= expires) {
		/* Too late: the expiry is the decision, and it is a denial. */
		r = approval_update(s, run, seq, STORE_APPROVAL_EXPIRED, "expiry", "", NULL,
				    STORE_SCOPE_ONCE);
		if (r == 0)
			r = store_sqlite_tx_commit(&tx);
		return r < 0 ? r : -ETIMEDOUT;
	}
	r = approval_update(s, run, seq, approve ? STORE_APPROVAL_APPROVED : STORE_APPROVAL_DENIED,
			    by, comment, edited, scope);
	if (r < 0)
		return r;
	return store_sqlite_tx_commit(&tx);
}

int
store_approval_expire(struct store *s, const char *run, int64_t seq)
{
	cleanup_tx struct store_tx tx = {0};
	struct store_approval a = {0};
	int r;

	if (!s || !store_sqlite_valid_id(run) || seq <= 0)
		return -EINVAL;
	r = store_sqlite_tx_begin(s, &tx);
	if (r < 0)
		return r;
	r = approval_read(s, run, seq, &a);
	if (r < 0)
		return r;
	enum store_approval_status cur = a.status;
	store_approval_clear(&a);
	if (cur != STORE_APPROVAL_PENDING)
		return -EALREADY;
	r = approval_update(s, run, seq, STORE_APPROVAL_EXPIRED, "expiry", "", NULL,
			    STORE_SCOPE_ONCE);
	if (r < 0)
		return r;
	return store_sqlite_tx_commit(&tx);
}

static bool
approver_matches(const json_t *approvers, const char *who)
{
	size_t i;
	json_t *e;

	if (json_array_size(approvers) == 0)
		return true;
	json_array_foreach(approvers, i, e) if (strcmp(json_string_value(e), who) == 0) return true;
	return false;
}

int
store_approval_foreach(struct store *s, const char *run, const char *status, const char *approver,
		       int (*fn)(const struct store_approval *a, void *ud), void *ud)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	bool *iterating;
	int rc, r = 0;

	if (!s || !fn || (run && !store_sqlite_valid_id(run)) ||
	    (status &&
	     name_index(approval_status_names, ARRAY_SIZE(approval_status_names), status) < 0))
		return -EINVAL;
	iterating = store_sqlite_iterating(s);
	if (*iterating)
		return -EBUSY;
	r = ix_stmt(s, IX_A_LIST, &st);
	if (r < 0)
		return r;
	if (run)
		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	if (status)
		sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	*iterating = true;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_approval a;
		r = read_approval(st, &a);
		if (r < 0)
			break;
		/* Filter again on what was read: the SQL filter is an index
		 * hint, the validated row is the truth. */
		if ((!run || strcmp(a.run, run) == 0) &&
		    (!status || strcmp(approval_status_names[a.status], status) == 0) &&
		    (!approver || approver_matches(a.approvers, approver)))
			r = fn(&a, ud);
		store_approval_clear(&a);
		if (r != 0)
			break;
	}
	*iterating = false;
	if (r != 0)
		return r;
	return rc == SQLITE_DONE ? 0 : store_sqlite_map_rc(rc);
}

/* ---- messages ---- */

void
store_message_clear(struct store_message *m)
{
	if (!m)
		return;
	free(m->run);
	free(m->text);
	free(m->mode);
	memset(m, 0, sizeof(*m));
}

void
store_messages_free(struct store_message *m, size_t n)
{
	if (!m)
		return;
	for (size_t i = 0; i < n; i++)
		store_message_clear(&m[i]);
	free(m);
}

static bool
check_mode(const char *v)
{
	return name_index(mode_names, ARRAY_SIZE(mode_names), v) >= 0;
}

/* Read and validate one messages row (columns as M_COLS). */
static int
read_message(sqlite3_stmt *st, struct store_message *ret)
{
	struct store_message m = {0};
	int status = 0;
	int r;

	r = store_sqlite_col_int64(st, 0, 1, INT64_MAX, &m.id);
	if (r == 0)
		r = store_sqlite_col_strdup(st, 1, STORE_ID_MAX, store_sqlite_valid_id, &m.run);
	if (r == 0)
		r = store_sqlite_col_strdup(st, 2, STORE_MESSAGE_MAX, check_message, &m.text);
	if (r == 0)
		r = store_sqlite_col_strdup(st, 3, STORE_NAME_MAX, check_mode, &m.mode);
	if (r == 0)
		r = col_enum(st, 4, msg_status_names, ARRAY_SIZE(msg_status_names), &status);
	if (r == 0)
		r = store_sqlite_col_int64(st, 5, 0, INT64_MAX, &m.created_ms);
	if (r == 0)
		r = store_sqlite_col_int64(st, 6, 0, INT64_MAX, &m.delivered_ms);
	if (r == 0)
		r = store_sqlite_col_int64(st, 7, 0, INT64_MAX, &m.delivered_seq);
	if (r == 0) {
		m.status = (enum store_msg_status)status;
		if (m.status != STORE_MSG_DELIVERED && (m.delivered_ms || m.delivered_seq))
			r = -EBADMSG;
	}
	if (r < 0) {
		store_message_clear(&m);
		return r;
	}
	*ret = m;
	return 0;
}

int
store_message_add(struct store *s, const char *run, const char *text, const char *mode,
		  int64_t *ret_id)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int r;

	if (!s || !store_sqlite_valid_id(run) || !valid_text(text, STORE_MESSAGE_MAX) ||
	    !check_mode(mode))
		return -EINVAL;
	r = ix_stmt(s, IX_M_INSERT, &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, mode, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, agd_wall_ms());
	r = store_sqlite_step_done(st);
	if (r < 0)
		return r;
	(*store_sqlite_ix(s))->msg_adds++;
	if (ret_id)
		*ret_id = sqlite3_last_insert_rowid(store_sqlite_db(s));
	return 0;
}

int
store_message_version(struct store *s, uint64_t *ret)
{
	sqlite3_stmt *st = NULL;
	int64_t now = agd_now_ns();
	struct store_ix *ix;
	int r;

	if (!s || !ret)
		return -EINVAL;
	r = ix_stmt(s, IX_DATA_VERSION, &st);
	if (r < 0)
		return r;
	ix = *store_sqlite_ix(s);
	/* data_version moves with every commit of another connection (another
	 * process). Reading it costs a read transaction; a daemon asks at every
	 * call of every run, so a value up to 1 ms old is reused: a message
	 * committed elsewhere is then seen at most 1 ms later, as if it had
	 * been sent that much later. The statement has no bindings: a reset
	 * after the step is all it needs. */
	if (!ix->data_version_ns || now - ix->data_version_ns > 1000000) {
		bool row = sqlite3_step(st) == SQLITE_ROW;
		if (row)
			ix->data_version = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		if (!row)
			return -EIO;
		ix->data_version_ns = now;
	}
	/* This connection's own messages are counted here. */
	*ret = ix->data_version << 32 ^ ix->msg_adds;
	return 0;
}

/* The run's queued messages as an array (possibly empty). */
static int
queued_read(struct store *s, const char *run, struct store_message **ret, size_t *ret_n)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	struct store_message *v = NULL;
	size_t n = 0;
	int rc, r;

	r = ix_stmt(s, IX_M_QUEUED, &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_message *nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			r = -ENOMEM;
			break;
		}
		v = nv;
		r = read_message(st, &v[n]);
		if (r < 0)
			break;
		if (strcmp(v[n].run, run) != 0 || v[n].status != STORE_MSG_QUEUED) {
			store_message_clear(&v[n]);
			r = -EBADMSG;
			break;
		}
		n++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = store_sqlite_map_rc(rc);
	if (r < 0) {
		store_messages_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int
store_message_take_queued(struct store *s, const char *run, int64_t delivered_seq,
			  struct store_message **ret, size_t *ret_n)
{
	cleanup_tx struct store_tx tx = {0};
	struct store_message *v = NULL;
	size_t n = 0;
	int r;

	if (!s || !ret || !ret_n || !store_sqlite_valid_id(run) || delivered_seq < 0)
		return -EINVAL;
	if (*store_sqlite_iterating(s))
		return -EBUSY;
	/* The common case, nothing queued, takes no write lock. */
	r = queued_read(s, run, &v, &n);
	if (r < 0)
		return r;
	store_messages_free(v, n);
	if (n == 0) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	r = store_sqlite_tx_begin(s, &tx);
	if (r < 0)
		return r;
	r = queued_read(s, run, &v, &n);
	if (r < 0)
		return r;
	int64_t now = agd_wall_ms();
	for (size_t i = 0; r == 0 && i < n; i++) {
		cleanup_stmt sqlite3_stmt *st = NULL;
		r = ix_stmt(s, IX_M_DELIVER, &st);
		if (r < 0)
			break;
		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, v[i].id);
		sqlite3_bind_int64(st, 3, now);
		sqlite3_bind_int64(st, 4, delivered_seq);
		r = store_sqlite_step_done(st);
		if (r == 0 && sqlite3_changes(store_sqlite_db(s)) != 1)
			r = -EALREADY;
		v[i].status = STORE_MSG_DELIVERED;
		v[i].delivered_ms = now;
		v[i].delivered_seq = delivered_seq;
	}
	if (r == 0)
		r = store_sqlite_tx_commit(&tx);
	if (r < 0) {
		store_messages_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int
store_approval_discard(struct store *s, const char *run, int64_t after_seq)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int r;

	if (!s || !store_sqlite_valid_id(run) || after_seq < 0)
		return -EINVAL;
	r = ix_stmt(s, IX_A_DISCARD, &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, after_seq);
	return store_sqlite_step_done(st);
}

int
store_message_list_queued(struct store *s, const char *run, struct store_message **ret,
			  size_t *ret_n)
{
	if (!s || !ret || !ret_n || !store_sqlite_valid_id(run))
		return -EINVAL;
	if (*store_sqlite_iterating(s))
		return -EBUSY;
	return queued_read(s, run, ret, ret_n);
}

/* Set message id's status from queued (M_DELIVER or M_REJECT) in one
 * transaction, telling a missing row from one no longer queued. */
static int
message_mark(struct store *s, const char *run, int64_t id, enum ix_stmt which, int64_t seq)
{
	cleanup_tx struct store_tx tx = {0};
	int rc, r, status = 0;

	r = store_sqlite_tx_begin(s, &tx);
	if (r < 0)
		return r;
	{
		cleanup_stmt sqlite3_stmt *st = NULL;
		r = ix_stmt(s, IX_M_GET_STATUS, &st);
		if (r < 0)
			return r;
		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			return -ENOENT;
		if (rc != SQLITE_ROW)
			return store_sqlite_map_rc(rc);
		r = col_enum(st, 0, msg_status_names, ARRAY_SIZE(msg_status_names), &status);
		if (r < 0)
			return r;
		if (status != STORE_MSG_QUEUED)
			return -EALREADY;
	}
	{
		cleanup_stmt sqlite3_stmt *st = NULL;
		r = ix_stmt(s, which, &st);
		if (r < 0)
			return r;
		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, id);
		if (which == IX_M_DELIVER) {
			sqlite3_bind_int64(st, 3, agd_wall_ms());
			sqlite3_bind_int64(st, 4, seq);
		}
		r = store_sqlite_step_done(st);
		if (r < 0)
			return r;
	}
	return store_sqlite_tx_commit(&tx);
}

int
store_message_deliver(struct store *s, const char *run, int64_t id, int64_t delivered_seq)
{
	if (!s || !store_sqlite_valid_id(run) || id <= 0 || delivered_seq < 0)
		return -EINVAL;
	return message_mark(s, run, id, IX_M_DELIVER, delivered_seq);
}

int
store_message_reject(struct store *s, const char *run, int64_t id)
{
	if (!s || !store_sqlite_valid_id(run) || id <= 0)
		return -EINVAL;
	return message_mark(s, run, id, IX_M_REJECT, 0);
}

int
store_message_foreach(struct store *s, const char *run,
		      int (*fn)(const struct store_message *m, void *ud), void *ud)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	bool *iterating;
	int rc, r = 0;

	if (!s || !fn || !store_sqlite_valid_id(run))
		return -EINVAL;
	iterating = store_sqlite_iterating(s);
	if (*iterating)
		return -EBUSY;
	r = ix_stmt(s, IX_M_LIST, &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	*iterating = true;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_message m;
		r = read_message(st, &m);
		if (r < 0)
			break;
		if (strcmp(m.run, run) != 0)
			r = -EBADMSG;
		else
			r = fn(&m, ud);
		store_message_clear(&m);
		if (r != 0)
			break;
	}
	*iterating = false;
	if (r != 0)
		return r;
	return rc == SQLITE_DONE ? 0 : store_sqlite_map_rc(rc);
}
