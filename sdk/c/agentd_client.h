/* agentd client library for agent code written in C.
 *
 * Talks to the supervisor over the agent channel (fd 3, named in AGENTD_FD):
 * newline-delimited JSON-RPC 2.0 with MCP method names. Depends on jansson only.
 * One call is in flight at a time; a client is not thread-safe.
 *
 * Return values: 0 on success, a negative errno for transport failures
 * (-ENOTCONN outside agentd, -EPIPE when the supervisor hung up, -EPROTO for a
 * malformed frame, -EMSGSIZE for an over-long one, -ENOMEM), or one of the
 * negative AGENTD_E* codes below. Outputs are written only on success; on an
 * AGENTD_E* failure `err` (when not NULL) says what happened. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AGENTD_MAX_FRAME (4u << 20)

/* Project error codes, returned negated; above the errno range. */
#define AGENTD_ETOOL   10001 /* the tool ran and failed (isError true) */
#define AGENTD_EDENIED 10002 /* policy or a human refused the call */
#define AGENTD_EREMOTE 10003 /* any other JSON-RPC error (diverged, limit, ...) */

/* JSON-RPC error codes of the agent channel. */
#define AGENTD_RPC_DENIED	   (-32001)
#define AGENTD_RPC_DIVERGED	   (-32002)
#define AGENTD_RPC_INTERRUPTED	   (-32003)
#define AGENTD_RPC_UNKNOWN_OUTCOME (-32004)
#define AGENTD_RPC_LIMIT	   (-32005)
#define AGENTD_RPC_FRAME_TOO_LARGE (-32006)

struct agentd_client;

/* Details of a failed request. Strings are truncated to fit; `json` is the
 * error's data (JSON-RPC errors) or the tool's structuredContent (tool errors),
 * malloc'd and owned by the struct: release it with agentd_error_clear(). */
struct agentd_error {
	int rpc_code;	   /* JSON-RPC error code, 0 for a tool error */
	char code[64];	   /* tool error code ("ENOENT"...), empty otherwise */
	char message[512]; /* human-readable message (denial reason for denials) */
	char decision[16]; /* denials: "deny" or "ask" */
	char rule[128];	   /* denials: id of the deciding rule, empty when none matched */
	char *json;
};

void agentd_error_clear(struct agentd_error *err);

/* Connect to the channel named by AGENTD_FD. Outside agentd (AGENTD_FD unset,
 * or not a unix stream socket) returns -ENOTCONN. */
int agentd_connect(struct agentd_client **ret_client);
/* Use an already connected channel fd; ownership of fd passes to the client
 * on success only. */
int agentd_connect_fd(int fd, struct agentd_client **ret_client);
/* Close the channel and free. Accepts NULL; returns NULL. */
struct agentd_client *agentd_client_free(struct agentd_client *c);

/* Any JSON-RPC request. params_json may be NULL. On success *ret_result_json
 * (if ret_result_json is not NULL) is the result as compact JSON, malloc'd. */
int agentd_request(struct agentd_client *c, const char *method, const char *params_json,
		   char **ret_result_json, struct agentd_error *err);

/* tools/call. args_json may be NULL ("{}"). On success *ret_result_json is the
 * structuredContent as compact JSON (malloc'd). A tool-level failure returns
 * -AGENTD_ETOOL with err->code/message and err->json = the structuredContent.
 * The request asks for no text copy of the result ("_meta":
 * {"agentd/text": false}); a reply that has one is read the same. */
int agentd_call(struct agentd_client *c, const char *tool, const char *args_json,
		char **ret_result_json, struct agentd_error *err);

/* Whether the last successful agentd_call result was replayed from the journal,
 * and its journal sequence number (0 if unknown). */
bool agentd_last_replayed(const struct agentd_client *c);
int64_t agentd_last_seq(const struct agentd_client *c);

/* agentd/resume: *ret_result_json = {"run_id","attempt","state","state_seq","journal_len"}. */
int agentd_resume(struct agentd_client *c, bool use_state, char **ret_result_json,
		  struct agentd_error *err);

/* agentd/checkpoint: save state_json (any JSON text); *ret_seq is the seq it was saved at. */
int agentd_checkpoint(struct agentd_client *c, const char *state_json, int64_t *ret_seq,
		      struct agentd_error *err);

/* Take the oldest queued agentd/message notification: returns 1 and its params
 * as compact JSON in *ret_params_json (malloc'd), or 0 when none is queued. */
int agentd_next_message(struct agentd_client *c, char **ret_params_json);

/* A static description of a return value of this library. */
const char *agentd_strerror(int r);

#ifdef __cplusplus
}
#endif
