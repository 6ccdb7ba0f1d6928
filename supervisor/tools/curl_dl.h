/* libcurl, loaded on first use: agentd run and resume map it (and the ~30
 * libraries it brings: TLS, LDAP, Kerberos, ...) only when an http.request
 * actually goes out, not at every start (docs/decisions.md). */
#pragma once

#include <curl/curl.h>

/* The libcurl functions the tools call, typed from curl's own prototypes. */
struct tools_curl {
	__typeof__(curl_easy_init) *easy_init;
	__typeof__(curl_easy_setopt) *easy_setopt;
	__typeof__(curl_easy_perform) *easy_perform;
	__typeof__(curl_easy_getinfo) *easy_getinfo;
	__typeof__(curl_easy_strerror) *easy_strerror;
	__typeof__(curl_easy_cleanup) *easy_cleanup;
	__typeof__(curl_slist_append) *slist_append;
	__typeof__(curl_slist_free_all) *slist_free_all;
	__typeof__(curl_url) *url;
	__typeof__(curl_url_set) *url_set;
	__typeof__(curl_url_get) *url_get;
	__typeof__(curl_url_cleanup) *url_cleanup;
	__typeof__(curl_free) *free;
};

/* The table: the first call loads libcurl (AGENTD_CURL_SONAME, bound now)
 * and runs curl_global_init; later calls return the same table. NULL if
 * libcurl cannot be loaded or lacks a function; *ret_err (may be NULL) then
 * says why. Not thread-safe, like curl_global_init: the supervisor and the
 * daemon are single-threaded. */
const struct tools_curl *tools_curl(const char **ret_err);
