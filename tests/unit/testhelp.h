/* testhelp.h: a tiny unit-test harness (after redis' testhelp.h).
 * test_cond("what", expr) records one check; test_report() prints
 * "N passed, N failed" and returns the exit status for main. */
#ifndef FT_TESTHELP_H
#define FT_TESTHELP_H

#include <stdio.h>

static int test_passed, test_failed;

#define test_cond(descr, _c) do { \
	if (_c) { \
		test_passed++; \
	} else { \
		test_failed++; \
		printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, descr); \
	} \
} while (0)

static inline int test_report(void)
{
	printf("%d passed, %d failed\n", test_passed, test_failed);
	return test_failed ? 1 : 0;
}

#endif
