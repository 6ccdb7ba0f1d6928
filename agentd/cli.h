/* Shared pieces of the agentd command line. */
#pragma once

#include <stdarg.h>

/* Why store_open failed, for a person: its errors that need more than strerror. */
const char *agd_store_open_error(int e);
/* Print "agentd: <message>" on stderr and return code (for `return agd_die(...)`). */
int agd_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* agentd policy check|lint ... (argv[0] is "policy"). */
int agd_cmd_policy(int argc, char **argv);

/* agentd doctor: the defences available here and what a run gets (doctor.c). */
int agd_cmd_doctor(int argc, char **argv);

#include <sys/types.h>
/* Root mode: the sandbox uid/gid of this command line's tenant ($AGENTD_TENANT,
 * else the calling user), stable per state dir (tenant_cmd.c). 0 or -errno. */
int agd_sandbox_id(const char *state_dir, uid_t *ret);

/* agentd serve [--config FILE] [--state DIR] [--socket PATH] (agentd/serve.c). */
int agd_cmd_serve(int argc, char **argv);

/* agentd approve | approvals | send ... (argv[0] is the command; approve_cmd.c). */
int agd_cmd_interact(int argc, char **argv);

struct store;
/* Open the store of the state dir (--state DIR if state is non-NULL, else the
 * default one), writing the dir's path to dir. 0 or -1 after a message. */
int agd_open_state_store(const char *state, char *dir, size_t dirsz, struct store **ret);

/* durable_cmd.c: --durable FILE, --deadline DUR, --durability process|power. */
#define AGD_OPT_DURABLE	   0x100
#define AGD_OPT_DEADLINE   0x101
#define AGD_OPT_DURABILITY 0x102
#include <jansson.h>
#include "store/store.h"
/* 1 when c was one of the options above, 0 when not, -1 after a message. */
int agd_durable_option(int c, const char *arg);
/* The store durability chosen (--durability, else $AGENTD_DURABILITY, else process). */
enum store_durability agd_durability(void);
/* Add the "durable" section (validated) to a new run's spec: 0, or an exit code. */
int agd_durable_spec(json_t *spec);
/* agentd fork NAME --at SEQ [--id NEW] ...; starts the fork through resume. */
int agd_cmd_fork(int argc, char **argv, int (*resume)(int argc, char **argv));
/* show --at SEQ: the number (-1 if not one), the time after which nothing had
 * happened yet (the start of call SEQ + 1), and the saved state as it stood. */
int64_t agd_parse_at(const char *s);
struct store_call;
int64_t agd_show_cutoff_ms(const struct store_call *calls, size_t n, int64_t at);
void agd_show_state_at(struct store *st, const char *id, int64_t at);
/* agentd admin backup FILE [--state DIR]. */
int agd_cmd_admin(int argc, char **argv);

/* agentd audit [--run NAME] [--state DIR] (audit_cmd.c). */
int agd_cmd_audit(int argc, char **argv);

/* agentd/policy_stack.c: the policy layers of a run as stored in its spec,
 * [{"name": "system"|"user:NAME"|"run", "policy": {doc}}...], from the policy
 * directory (dir_opt, else the default for our uid, used when it exists) and
 * `file` (NULL: none); user NULL is the calling user. 0 or a negative errno
 * with err filled. */
int agd_policy_stack(const char *dir_opt, const char *user, const char *file, json_t **ret,
		     char *err, size_t errsz);
/* For agentd run: the spec's "policy" value (one document when only `file`
 * is used, else the layers; deny-all with a warning when there is none).
 * 0, or an exit status after printing why. */
int agd_run_policy(const char *dir_opt, const char *file, json_t **ret);
