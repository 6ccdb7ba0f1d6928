/* Tenant ids: distinct per tenant, stable, inside the range, never a host
 * account's, and a malformed or exhausted file is an error, not a guess. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/tenant_ids.h"

static char dir[] = "/tmp/agentd-tenant-XXXXXX";

static void
write_file(const char *text)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/tenant-ids", dir);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int
setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/tenant-ids", dir);
	unlink(p);
	return rmdir(dir);
}

static void
test_distinct_and_stable(void **state)
{
	uid_t a, b, a2;

	write_file("");
	assert_int_equal(sup_tenant_id(dir, "alice", 200000, 100, &a), 0);
	assert_int_equal(sup_tenant_id(dir, "bob", 200000, 100, &b), 0);
	assert_int_not_equal(a, b);
	assert_true(a >= 200000 && a < 200100);
	assert_true(b >= 200000 && b < 200100);
	assert_int_equal(sup_tenant_id(dir, "alice", 200000, 100, &a2), 0);
	assert_int_equal(a, a2);
}

static void
test_skips_host_accounts(void **state)
{
	uid_t id;

	/* 65534 is nobody/nogroup on every Debian host: a range of only that id is full. */
	write_file("");
	assert_int_equal(sup_tenant_id(dir, "nobody-range", 65534, 1, &id), -ENOSPC);
}

static void
test_exhausted_and_malformed(void **state)
{
	uid_t id;

	write_file("");
	assert_int_equal(sup_tenant_id(dir, "t1", 300000, 2, &id), 0);
	assert_int_equal(sup_tenant_id(dir, "t2", 300000, 2, &id), 0);
	assert_int_equal(sup_tenant_id(dir, "t3", 300000, 2, &id), -ENOSPC);
	assert_int_equal(sup_tenant_id(dir, "../x", 300000, 2, &id), -EINVAL);
	assert_int_equal(sup_tenant_id(dir, "", 300000, 2, &id), -EINVAL);
	write_file("alice 200000\nbob");
	assert_int_equal(sup_tenant_id(dir, "carol", 200000, 10, &id), -EBADMSG);
	write_file("alice 200000 extra\n");
	assert_int_equal(sup_tenant_id(dir, "carol", 200000, 10, &id), -EBADMSG);
	write_file("alice 5\n");
	assert_int_equal(sup_tenant_id(dir, "alice", 200000, 10, &id), -ERANGE);
	/* The next id follows the highest recorded one, never reusing it. */
	write_file("alice 200003\n");
	assert_int_equal(sup_tenant_id(dir, "bob", 200000, 10, &id), 0);
	assert_int_equal(id, 200004);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_distinct_and_stable),
	    cmocka_unit_test(test_skips_host_accounts),
	    cmocka_unit_test(test_exhausted_and_malformed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
