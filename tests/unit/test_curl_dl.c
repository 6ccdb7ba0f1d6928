/* libcurl loaded on first use (supervisor/tools/curl_dl.c), here built to look
 * for a library that does not exist: http.request must then answer with a
 * clear tool error, and nothing else may need libcurl. The real library is
 * exercised by test_tools and the integration tests. */
#define AGENTD_CURL_SONAME "libagentd-test-no-such-curl.so.4"
#include "supervisor/tools/curl_dl.c"

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

#include "common/json.h"
#include "supervisor/tools/tools.h"

static void
test_missing_library(void **state)
{
	const char *err = NULL;
	(void)state;

	assert_null(tools_curl(&err));
	assert_non_null(err);
	assert_non_null(strstr(err, "libcurl is not available"));
	assert_non_null(strstr(err, AGENTD_CURL_SONAME));
	/* Not retried behind the caller's back: the same answer, at once. */
	err = NULL;
	assert_null(tools_curl(&err));
	assert_non_null(strstr(err, "libcurl is not available"));
	tools_global_init(); /* tolerated: the tool reports it */
}

static void
test_http_request_reports_it(void **state)
{
	struct tool_ctx ctx = {.run_id = "r", .seq = 1, .cwd = "/", .idempotency_key = "r:1"};
	cleanup_json json_t *args =
	    json_pack("{s:s,s:s}", "method", "GET", "url", "http://127.0.0.1:9/");
	json_t *content = NULL;
	bool is_error = false;
	(void)state;

	assert_int_equal(tools_http_request.call(&ctx, args, &content, &is_error), 0);
	assert_true(is_error);
	json_t *e = json_object_get(content, "error");
	assert_string_equal(json_string_value(json_object_get(e, "code")), "ENOTSUP");
	assert_non_null(
	    strstr(json_string_value(json_object_get(e, "message")), "libcurl is not available"));
	json_decref(content);
	/* Other tools do not need it. */
	cleanup_json json_t *echo = json_pack("{s:s}", "value", "x");
	assert_int_equal(tools_echo.call(&ctx, echo, &content, &is_error), 0);
	assert_false(is_error);
	json_decref(content);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_missing_library),
	    cmocka_unit_test(test_http_request_reports_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
