#include "supervisor/tools/curl_dl.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#ifndef AGENTD_CURL_SONAME
#define AGENTD_CURL_SONAME "libcurl.so.4"
#endif

const struct tools_curl *
tools_curl(const char **ret_err)
{
	static struct tools_curl api;
	static bool loaded;
	static char err[512];
	static const struct {
		const char *name;
		size_t off;
	} syms[] = {
#define SYM(f) {"curl_" #f, offsetof(struct tools_curl, f)}
	    SYM(easy_init),	SYM(easy_setopt),  SYM(easy_perform), SYM(easy_getinfo),
	    SYM(easy_strerror), SYM(easy_cleanup), SYM(slist_append), SYM(slist_free_all),
	    SYM(url),		SYM(url_set),	   SYM(url_get),      SYM(url_cleanup),
	    SYM(free),
#undef SYM
	};
	void *h;

	if (loaded)
		return &api;
	if (err[0])
		goto fail;
	/* RTLD_NOW: resolved in full here, like the program itself (-z now). */
	h = dlopen(AGENTD_CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, sizeof(err), "libcurl is not available: %s", dlerror());
		goto fail;
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *f = dlsym(h, syms[i].name);
		if (!f) {
			snprintf(err, sizeof(err), "%s lacks %s", AGENTD_CURL_SONAME, syms[i].name);
			dlclose(h);
			goto fail;
		}
		memcpy((char *)&api + syms[i].off, &f, sizeof(f));
	}
	__typeof__(curl_global_init) *global_init =
	    (__typeof__(curl_global_init) *)dlsym(h, "curl_global_init");
	if (!global_init || global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, sizeof(err), "curl_global_init failed");
		dlclose(h);
		goto fail;
	}
	loaded = true;
	return &api;
fail:
	if (ret_err)
		*ret_err = err;
	return NULL;
}
