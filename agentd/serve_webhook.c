/* Completion webhooks: when a run with a "webhook" URL becomes final, agentd
 * POSTs the run object there. libcurl's multi interface is driven by our own
 * loop (its sockets become watches, its timeout a timerfd), so a slow or
 * unreachable receiver never blocks anything. Best effort: a failed delivery
 * is retried twice; deliveries pending when the daemon stops are not sent
 * later (docs/api.md). Only hosts named in the config's webhook_hosts. */
#include <curl/curl.h>
#include <errno.h>
#include <strings.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include "agentd/serve.h"
#include "common/util.h"

#define HOOK_TRIES	3
#define HOOK_TIMEOUT_MS 10000
#define HOOK_MAX_ACTIVE 256 /* deliveries in flight; more are dropped, counted */

struct hook_sock {
	struct agd_watch w;
	struct serve *sv;
	curl_socket_t fd;
};

struct hook {
	struct serve *sv;
	struct hook *next, *prev; /* every delivery in flight: freed at stop */
	CURL *easy;
	struct curl_slist *hdrs;
	char *url, *body;
	int tries;
};

static void hooks_check(struct serve *sv);

static size_t
discard(char *p, size_t size, size_t n, void *ud)
{
	return size * n;
}

static void
hook_free(struct hook *h)
{
	if (!h)
		return;
	if (h->prev)
		h->prev->next = h->next;
	else if (h->sv && h->sv->hook_list == h)
		h->sv->hook_list = h->next;
	if (h->next)
		h->next->prev = h->prev;
	if (h->easy)
		curl_easy_cleanup(h->easy);
	curl_slist_free_all(h->hdrs);
	free(h->url);
	free(h->body);
	free(h);
}

static int
hook_start(struct hook *h)
{
	struct serve *sv = h->sv;

	if (h->easy)
		curl_easy_cleanup(h->easy);
	h->easy = curl_easy_init();
	if (!h->easy)
		return -ENOMEM;
	h->tries++;
	curl_easy_setopt(h->easy, CURLOPT_URL, h->url);
	curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, h->body);
	curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->hdrs);
	curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, (long)HOOK_TIMEOUT_MS);
	curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h->easy, CURLOPT_PRIVATE, h);
	/* The response body is not needed. */
	curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, discard);
	if (curl_multi_add_handle(sv->hooks, h->easy) != CURLM_OK)
		return -EIO;
	sv->hooks_active++;
	return 0;
}

static void
on_hook_sock(struct agd_watch *w, uint32_t events)
{
	struct hook_sock *hs = (struct hook_sock *)w;
	int flags = (events & EPOLLIN ? CURL_CSELECT_IN : 0) |
		    (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
		    (events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
	int running = 0;
	struct serve *sv = hs->sv;

	curl_multi_socket_action(sv->hooks, hs->fd, flags, &running);
	hooks_check(sv);
}

static int
sock_cb(CURL *easy, curl_socket_t fd, int what, void *ud, void *sockp)
{
	struct serve *sv = ud;
	struct hook_sock *hs = sockp;

	if (what == CURL_POLL_REMOVE) {
		if (hs) {
			/* curl owns and closes the socket: only forget the watch. */
			epoll_ctl(sv->loop.epfd, EPOLL_CTL_DEL, hs->fd, NULL);
			hs->w.fd = -1;
			curl_multi_assign(sv->hooks, fd, NULL);
			free(hs);
		}
		return 0;
	}
	uint32_t ev = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (!hs) {
		hs = calloc(1, sizeof(*hs));
		if (!hs)
			return -1;
		*hs = (struct hook_sock){{fd, on_hook_sock}, sv, fd};
		if (agd_loop_add(&sv->loop, &hs->w, ev) < 0) {
			free(hs);
			return -1;
		}
		curl_multi_assign(sv->hooks, fd, hs);
		return 0;
	}
	return agd_loop_mod(&sv->loop, &hs->w, ev) < 0 ? -1 : 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *ud)
{
	struct serve *sv = ud;
	struct itimerspec its = {0};

	if (timeout_ms == 0)
		its.it_value.tv_nsec = 1; /* now: 0 would disarm */
	else if (timeout_ms > 0)
		its.it_value = (struct timespec){timeout_ms / 1000, (timeout_ms % 1000) * 1000000};
	return timerfd_settime(sv->w_hook_timer.fd, 0, &its, NULL) < 0 ? -1 : 0;
}

static void
on_hook_timer(struct agd_watch *w, uint32_t events)
{
	struct serve *sv = (struct serve *)((char *)w - offsetof(struct serve, w_hook_timer));
	uint64_t ticks;
	int running = 0;

	if (read(w->fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		return;
	curl_multi_socket_action(sv->hooks, CURL_SOCKET_TIMEOUT, 0, &running);
	hooks_check(sv);
}

static void
hooks_check(struct serve *sv)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(sv->hooks, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct hook *h = NULL;
		long status = 0;
		CURLcode rc = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&h);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		curl_multi_remove_handle(sv->hooks, m->easy_handle);
		sv->hooks_active--;
		if (rc == CURLE_OK && status >= 200 && status < 300) {
			sv->hooks_sent++;
			hook_free(h);
		} else if (h->tries < HOOK_TRIES && hook_start(h) == 0) {
			continue;
		} else {
			fprintf(stderr, "agentd: webhook %s failed after %d tries: %s\n", h->url,
				h->tries, rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP error");
			sv->hooks_failed++;
			hook_free(h);
		}
	}
}

int
serve_hooks_init(struct serve *sv)
{
	sv->w_hook_timer = (struct agd_watch){
	    timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK), on_hook_timer};
	if (sv->w_hook_timer.fd < 0)
		return -errno;
	int e = agd_loop_add(&sv->loop, &sv->w_hook_timer, EPOLLIN);
	if (e < 0)
		return e;
	sv->hooks = curl_multi_init();
	if (!sv->hooks)
		return -ENOMEM;
	curl_multi_setopt(sv->hooks, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(sv->hooks, CURLMOPT_SOCKETDATA, sv);
	curl_multi_setopt(sv->hooks, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(sv->hooks, CURLMOPT_TIMERDATA, sv);
	return 0;
}

void
serve_hooks_free(struct serve *sv)
{
	if (sv->hooks) {
		/* Deliveries still in flight are dropped (best effort). */
		while (sv->hook_list) {
			struct hook *h = sv->hook_list;
			if (h->easy)
				curl_multi_remove_handle(sv->hooks, h->easy);
			hook_free(h);
		}
		curl_multi_cleanup(sv->hooks);
		sv->hooks = NULL;
	}
	agd_loop_close_watch(&sv->loop, &sv->w_hook_timer);
}

bool
serve_hook_host_allowed(const struct serve *sv, const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL, *scheme = NULL;
	bool ok = false;

	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		goto out;
	for (size_t i = 0; i < sv->cfg.n_hook_hosts; i++)
		if (strcasecmp(host, sv->cfg.hook_hosts[i]) == 0)
			ok = true;
out:
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	return ok;
}

void
serve_hook_send(struct serve *sv, const char *url, json_t *body)
{
	struct hook *h = NULL;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (!sv->hooks || !text || sv->hooks_active >= HOOK_MAX_ACTIVE) {
		free(text);
		sv->hooks_failed++;
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h || !(h->url = strdup(url))) {
		free(text);
		hook_free(h);
		sv->hooks_failed++;
		return;
	}
	h->sv = sv;
	h->body = text;
	h->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	h->next = sv->hook_list;
	if (h->next)
		h->next->prev = h;
	sv->hook_list = h;
	if (hook_start(h) < 0) {
		sv->hooks_failed++;
		hook_free(h);
	}
}
