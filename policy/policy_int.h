/* Internal representation of a compiled policy, shared by the policy sources only. */
#pragma once

#include <stdarg.h>

#include "policy/policy.h"

/* Limits that keep compilation and matching bounded whatever the input. */
#define PGLOB_MAX_LEN	      1024 /* characters in one glob */
#define PGLOB_MAX_WORDS	      ((PGLOB_MAX_LEN + 1 + 63) / 64)
#define PURL_MAX_LEN	      8192
#define PHOST_MAX_LEN	      253
#define AGD_POLICY_SCAN_DEPTH 128
#define POLICY_MAX_RULES      100000

enum ptok_kind {
	PTOK_LIT = 0, /* one literal byte */
	PTOK_ANY1,    /* '?': one byte other than the separator */
	PTOK_STAR,    /* '*': any run of bytes without the separator */
	PTOK_DSTAR,   /* '**': any run of bytes */
};

struct ptok {
	uint8_t kind;
	uint8_t c;
	/* Epsilon from this token's state straight to the state after the next token:
	 * lets "a/ **" match "a" and "a/ ** /b" match "a/b" (spaces added here only to
	 * keep the comment closed). */
	uint8_t eps2;
};

/* A glob compiled into a token list, matched by simulating its NFA with a bitset,
 * so matching is linear in the subject whatever the pattern. */
struct pglob {
	char *src;	  /* as written (host globs: lowercased / canonical IP) */
	struct ptok *tok; /* ntok tokens */
	uint32_t ntok;
	char sep;	     /* '/' for paths, '.' for hosts, 0 for tool names */
	bool literal;	     /* no wildcard: compare src directly */
	char *prefix;	     /* literal bytes before the first wildcard */
	uint32_t prefix_len; /* == number of leading LIT tokens skipped by the prefix test */
	char *root;	     /* path globs: literal directory prefix (see policy_result) */
	bool is_ip;	     /* host globs: an IP literal in canonical form */
	/* Bit-parallel form for globs of fewer than 63 tokens (nearly all): one word
	 * of states, a byte -> class map and per-class advance masks. */
	bool fast;
	uint8_t *cls;  /* 256 entries */
	uint64_t *adv; /* per class: states that advance on a byte of that class */
	uint64_t m_loop, m_dstar, m_eps1, m_eps2, m_init;
};

/* An IP address in binary: fam 4 (b[0..3]) or 6 (b[0..15]). */
struct pip {
	uint8_t fam;
	uint8_t b[16];
};

/* A host matcher entry that is an address block: "10.0.0.0/8", "[fc00::]/7". */
struct pcidr {
	char *src; /* canonical text, "10.0.0.0/8" */
	struct pip net;
	uint8_t plen;
};

/* A parsed URL in the form matchers use. */
struct purl {
	bool https;
	bool userinfo;
	bool is_ip;
	struct pip ip;		      /* when is_ip */
	char host[PHOST_MAX_LEN + 3]; /* lowercased, no trailing dot; IPv6 as "[...]" */
	unsigned port;		      /* 0: default for the scheme */
	/* "scheme://host[:port]/path[?query]" with default port dropped, dot
	 * segments removed and the fragment dropped. */
	char norm[PURL_MAX_LEN + 1];
};

struct policy_rule {
	char *id;
	enum policy_decision decision;
	size_t index; /* position in the policy's rule list */
	struct pglob tool;
	struct pglob *paths;
	size_t n_paths;
	struct pglob *hosts;
	size_t n_hosts;
	struct pcidr *cidrs; /* address blocks of the host matcher */
	size_t n_cidrs;
	char **methods; /* uppercased */
	size_t n_methods;
	char **url_prefixes; /* normalised like purl.norm */
	size_t n_url_prefixes;
	bool has_max_bytes;
	uint64_t max_bytes;
	char **approvers; /* NULL-terminated, always non-NULL */
	uint64_t expires_ms;
	enum policy_on_unknown on_unknown;
	json_t *src; /* the rule object as written, for policy_to_json */
};

struct psecret_hosts {
	char **names; /* NULL-terminated; what policy_secret.hosts points to */
	struct pglob *globs;
	size_t n;
};

/* Rules keyed by a literal: a path glob's root directory or a literal host. */
struct pkey {
	char *key; /* NULL: empty slot */
	uint32_t len;
	uint32_t hash;
	uint32_t *pos; /* positions in the bucket's idx, ascending */
	uint32_t n, cap;
};

/* The rules that can apply to a set of tool names, in precedence order, with a
 * sub-index so a call only looks at rules whose path root or host it could match. */
struct policy_bucket {
	char *name; /* literal tool name or first label; NULL: empty slot */
	uint32_t hash;
	bool check_tool; /* rules' tool globs still have to be matched */
	uint32_t *idx;	 /* rule indices, sorted by (decision, index) */
	size_t n;
	uint32_t *always; /* positions in idx of rules not in `keys` */
	size_t n_always;
	struct pkey *keys; /* open addressing, keys_size a power of two (0: no sub-index) */
	size_t keys_size;
	bool path_keys, host_keys;
};

#define PCAND_MAX_LISTS 32

struct policy {
	char *extends;
	json_t *description;		   /* string or NULL */
	enum policy_on_unknown on_unknown; /* top-level "on_unknown" */
	struct policy_rule *rules;
	size_t n_rules;
	struct policy_limits limits;
	json_t *costs;	   /* limits.cost: {tool: positive integer}, or NULL */
	char *cost_header; /* limits.cost_header, or NULL */
	struct policy_mount *mounts;
	size_t n_mounts;
	bool network_loopback;		    /* "sandbox": {"network": "loopback"} */
	bool network_declared;		    /* the document names "network" at all */
	unsigned require;		    /* POLICY_DEFENCE_*: "sandbox.require" */
	unsigned optional;		    /* POLICY_DEFENCE_*: "sandbox.optional" */
	struct policy_secret *secrets;	    /* sorted by name */
	struct psecret_hosts *secret_hosts; /* parallel to secrets */
	size_t n_secrets;
	/* Index: literal tool names, then the first label of wildcard tool patterns
	 * ("fs" for "fs.*"), then the rest (patterns like "*"). */
	struct policy_bucket *tab;
	size_t tab_size; /* power of two */
	struct policy_bucket *groups;
	size_t groups_size;
	struct policy_bucket residual;
};

/* The defence names of the POLICY_DEFENCE_* bits in mask, as a new array. */
json_t *pdefences_json(unsigned mask);
/* limits.cpu as written back: "50%", "12.5%" (thousandths of one CPU). */
json_t *pcpu_json(uint64_t milli);

/* glob.c */
int pglob_compile(const char *src, char sep, struct pglob *ret);
void pglob_done(struct pglob *g);
bool pglob_match(const struct pglob *g, const char *s, size_t len);
/* True if every string matched by `a` is matched by `d` (sound, not complete). */
bool pglob_covers(const struct pglob *d, const struct pglob *a);

/* index.c */
int pindex_build(struct policy *p);
void pindex_free(struct policy *p);
/* The bucket to evaluate `tool` against (never NULL). */
const struct policy_bucket *pindex_bucket(const struct policy *p, const char *tool);
const struct pkey *pindex_key(const struct policy_bucket *b, const char *key, size_t len,
			      uint32_t hash);
uint32_t pindex_hash_step(uint32_t h, uint8_t c);
#define PINDEX_HASH_INIT 2166136261u

/* url.c */
/* Parses into *ret, which is scratch space: its contents are meaningful only when
 * 0 is returned. Returns 0 or -EINVAL. */
int purl_parse(const char *url, size_t len, struct purl *ret);
/* Canonical text of an IP literal host ("127.0.0.1", "[::1]") into out, if it is one.
 * Returns 1 if it is an IP, 0 if it is a name, -EINVAL if it is an invalid number. */
int purl_host_ip(const char *host, size_t len, struct pip *ret_ip, char *out, size_t outsz);
/* Parse "ADDR/LEN" (IPv6 in brackets or bare). Returns 0 or -EINVAL. */
int pcidr_parse(const char *s, struct pcidr *ret);
bool pcidr_contains(const struct pcidr *c, const struct pip *ip);

/* Position-aware error reporting during compilation. A path into the document:
 * key != NULL selects an object member, otherwise idx selects an array element. */
struct pstep {
	const char *key;
	size_t idx;
};

/* Finds the 1-based line/column of the value (or, with want_key, of the member key)
 * at steps in buf. Returns false if not found. */
bool ppos_locate(const char *buf, size_t len, const struct pstep *steps, size_t n, bool want_key,
		 int *ret_line, int *ret_col);
void ppos_of_offset(const char *buf, size_t len, size_t off, int *ret_line, int *ret_col);

/* parse.c: compile a document already parsed by jansson. buf may be NULL (positions
 * then unknown). In lint mode every problem is reported through the findings list
 * and compilation continues where it can. */
struct plint {
	struct policy_finding *f;
	size_t n, cap;
};
int policy_compile(json_t *doc, const char *buf, size_t len, struct plint *lint,
		   struct policy **ret, struct policy_error *err);
int plint_add(struct plint *l, int line, int column, enum policy_severity sev, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
