/* The timeline's lines for calls (supervisor/timeline.c): a live call's,
 * and a stored call.* event's (as older versions stored them) alike. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "supervisor/supervisor.h"

static const char *
line_for(int64_t dur_us)
{
	static char buf[256];
	struct sup_call_line c = {7, "agentd.echo", "allow", "echo", "ok", false, dur_us};

	return sup_format_call(&c, buf, sizeof(buf));
}

static void
test_call_duration_in_tenths_of_ms(void **state)
{
	(void)state;
	assert_string_equal(line_for(0),
			    "  #7    agentd.echo   allow         echo             0.0 ms    ok");
	assert_string_equal(line_for(49),
			    "  #7    agentd.echo   allow         echo             0.0 ms    ok");
	assert_string_equal(line_for(50),
			    "  #7    agentd.echo   allow         echo             0.1 ms    ok");
	assert_string_equal(line_for(1249),
			    "  #7    agentd.echo   allow         echo             1.2 ms    ok");
	assert_string_equal(line_for(1250),
			    "  #7    agentd.echo   allow         echo             1.3 ms    ok");
	assert_string_equal(line_for(12345678),
			    "  #7    agentd.echo   allow         echo             12345.7 ms ok");
	assert_string_equal(line_for(-5),
			    "  #7    agentd.echo   allow         echo             0.0 ms    ok");
}

static void
test_call_denied_and_replayed(void **state)
{
	char buf[256];
	struct sup_call_line d = {3, "fs.write", "deny", NULL, "denied", false, 900};
	struct sup_call_line r = {4, "http.request", "allow", "", "error", true, 900};

	(void)state;
	assert_string_equal(
	    sup_format_call(&d, buf, sizeof(buf)),
	    "  #3    fs.write      deny          -                          denied");
	assert_string_equal(sup_format_call(&r, buf, sizeof(buf)),
			    "  #4    http.request  allow         -                          error  "
			    "(replayed from journal)");
}

/* A stored call.* event reads as the live line of the same call. */
static void
test_stored_call_event_same_line(void **state)
{
	char a[256], b[256];
	struct sup_call_line c = {12, "agentd.echo", "allow", "echo", "ok", false, 2345};
	json_t *data = json_pack("{s:I,s:s,s:s,s:s,s:s,s:b,s:I}", "seq", (json_int_t)12, "tool",
				 "agentd.echo", "decision", "allow", "rule", "echo", "outcome",
				 "ok", "replayed", 0, "duration_us", (json_int_t)2345);
	json_t *denied = json_pack("{s:s,s:s,s:s,s:s}", "tool", "fs.write", "decision", "deny",
				   "rule", "", "outcome", "denied");
	struct sup_call_line d = {5, "fs.write", "deny", "", "denied", false, 0};

	(void)state;
	assert_non_null(data);
	assert_non_null(denied);
	assert_string_equal(sup_format_event(1, 12, "call.finished", data, a, sizeof(a)),
			    sup_format_call(&c, b, sizeof(b)));
	assert_string_equal(sup_format_event(1, 5, "call.denied", denied, a, sizeof(a)),
			    sup_format_call(&d, b, sizeof(b)));
	json_decref(data);
	json_decref(denied);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_call_duration_in_tenths_of_ms),
	    cmocka_unit_test(test_call_denied_and_replayed),
	    cmocka_unit_test(test_stored_call_event_same_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
