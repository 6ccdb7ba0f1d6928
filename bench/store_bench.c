/* Store benchmark: durable journal commits on the SQLite backend.
 *
 *   store_bench [-n PAIRS] [-d DIR]
 *
 * For each durability mode, commits PAIRS intent+finish pairs (two commits
 * each, the cost of an `effect` call) and PAIRS single-row records (a `pure`
 * call), timing every commit. Prints pairs per second and the p50 / p99 / max
 * latency of one commit. DIR should be on the disk the store will live on
 * (default /var/tmp): on tmpfs an fsync costs nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "store/store.h"

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static double
pct_us(const int64_t *sorted, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1));

	return (double)sorted[i] / 1000.0;
}

static void
report(const char *mode, const char *what, int64_t *lat, size_t n, int64_t total_ns, size_t units)
{
	qsort(lat, n, sizeof(*lat), cmp_i64);
	printf("%-8s %-22s %9.0f/s   commit p50 %7.1f us  p99 %7.1f us  max %8.1f us\n", mode, what,
	       (double)units * 1e9 / (double)total_ns, pct_us(lat, n, 0.50), pct_us(lat, n, 0.99),
	       (double)lat[n - 1] / 1000.0);
}

static int
bench_mode(const char *dir, enum store_durability d, size_t pairs)
{
	const char *mode = d == STORE_DURABILITY_POWER ? "power" : "process";
	cleanup_free char *path = agd_asprintf("%s/store-bench-%d.db", dir, (int)getpid());
	cleanup_free int64_t *lat = calloc(2 * pairs, sizeof(*lat));
	struct store *s = NULL;
	int64_t t0, t1, start;
	int r;

	if (!path || !lat)
		return -ENOMEM;
	r = store_open(path, d, &s);
	if (r < 0)
		return r;
	/* A typical brokered call: small args, a result of a few hundred bytes. */
	cleanup_json json_t *args = json_pack("{s:s,s:s}", "method", "GET", "url",
					      "https://api.example.com/v1/items?page=1");
	cleanup_json json_t *res =
	    json_pack("{s:i,s:{s:s},s:s}", "status", 200, "headers", "content-type",
		      "application/json", "body",
		      "{\"items\":[1,2,3,4,5,6,7,8,9,10],\"next\":null,"
		      "\"note\":\"padding padding padding padding padding\"}");

	/* intent + finish: two commits per call */
	start = agd_now_ns();
	for (size_t i = 0; i < pairs && r == 0; i++) {
		struct store_call c = {
		    .seq = (int64_t)i + 1,
		    .tool = (char *)"http.request",
		    .args = args,
		    .attempt = 1,
		    .decision = (char *)"allow",
		    .rule = (char *)"api-read",
		    .started_ms = agd_wall_ms(),
		};
		t0 = agd_now_ns();
		r = store_journal_intent(s, "bench-effect", &c);
		t1 = agd_now_ns();
		lat[2 * i] = t1 - t0;
		if (r == 0)
			r = store_journal_finish(s, "bench-effect", c.seq, STORE_CALL_OK, res,
						 agd_wall_ms());
		lat[2 * i + 1] = agd_now_ns() - t1;
	}
	if (r == 0)
		report(mode, "intent+finish pairs", lat, 2 * pairs, agd_now_ns() - start, pairs);

	/* record: one commit per call */
	start = agd_now_ns();
	for (size_t i = 0; i < pairs && r == 0; i++) {
		struct store_call c = {
		    .seq = (int64_t)i + 1,
		    .tool = (char *)"fs.read",
		    .args = args,
		    .status = STORE_CALL_OK,
		    .result = res,
		    .attempt = 1,
		    .decision = (char *)"allow",
		    .rule = (char *)"",
		    .started_ms = agd_wall_ms(),
		};
		t0 = agd_now_ns();
		r = store_journal_record(s, "bench-pure", &c);
		lat[i] = agd_now_ns() - t0;
	}
	if (r == 0)
		report(mode, "record (pure call)", lat, pairs, agd_now_ns() - start, pairs);

	/* load: replay cost of the whole journal, verification included */
	if (r == 0) {
		struct store_call *calls = NULL;
		size_t n = 0;
		t0 = agd_now_ns();
		r = store_journal_load(s, "bench-effect", &calls, &n);
		t1 = agd_now_ns();
		if (r == 0)
			printf("%-8s %-22s %9.0f rows/s (%zu rows, %.1f ms)\n", mode,
			       "journal_load+verify", (double)n * 1e9 / (double)(t1 - t0), n,
			       (double)(t1 - t0) / 1e6);
		store_calls_free(calls, r == 0 ? n : 0);
	}
	store_close(s);
	static const char *const suffixes[] = {"", "-wal", "-shm", "-payloads"};
	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		cleanup_free char *p = agd_asprintf("%s%s", path, suffixes[i]);
		if (p)
			unlink(p);
	}
	return r;
}

int
main(int argc, char **argv)
{
	const char *dir = "/var/tmp";
	size_t pairs = 5000;
	int opt, r;

	while ((opt = getopt(argc, argv, "n:d:")) != -1) {
		switch (opt) {
		case 'n':
			pairs = strtoul(optarg, NULL, 10);
			break;
		case 'd':
			dir = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [-n PAIRS] [-d DIR]\n", argv[0]);
			return 2;
		}
	}
	if (pairs == 0) {
		fprintf(stderr, "store_bench: -n must be positive\n");
		return 2;
	}
	printf("store_bench: %zu calls per test, dir %s\n", pairs, dir);
	r = bench_mode(dir, STORE_DURABILITY_PROCESS, pairs);
	if (r == 0)
		r = bench_mode(dir, STORE_DURABILITY_POWER, pairs);
	if (r < 0) {
		fprintf(stderr, "store_bench: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
