/* Unit tests for lib/ratelimit.c: bucket accrual and waits at exact times,
 * debt and adjust, pauses, unlimited buckets, the observe() rule, duration
 * and retry-after parsing (valid, invalid, overflowing), backoff bounds and
 * determinism. Rates are chosen so the arithmetic is exact in doubles. */
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "ft.h"
#include "ratelimit.h"
#include "testhelp.h"

static bool near(double a, double b)
{
	return fabs(a - b) <= 1e-12 * (fabs(b) > 1 ? fabs(b) : 1);
}

static void test_bucket(void)
{
	struct ft_bucket b;

	/* 60/minute: 1 unit a second, default burst of one second = 1 unit */
	ft_bucket_init(&b, 60, 0, 0);
	test_cond("rate per second", b.rate == 1);
	test_cond("default capacity is one second of rate", b.capacity == 1);
	test_cond("starts full", ft_bucket_wait(&b, 1, 0) == 0);
	ft_bucket_take(&b, 1, 0);
	test_cond("empty: one second for one unit", ft_bucket_wait(&b, 1, 0) == 1);
	test_cond("half way", ft_bucket_wait(&b, 1, 0.5) == 0.5);
	test_cond("exactly at refill", ft_bucket_wait(&b, 1, 1) == 0);
	test_cond("idle accrual stops at capacity", ft_bucket_wait(&b, 1, 1000) == 0);

	/* 600/minute, burst 5 */
	ft_bucket_init(&b, 600, 5, 100);
	test_cond("explicit burst", b.capacity == 5 && b.rate == 10);
	ft_bucket_take(&b, 5, 100);
	test_cond("3 units at 10/s", ft_bucket_wait(&b, 3, 100) == 0.3);
	test_cond("wait shrinks with time", near(ft_bucket_wait(&b, 3, 100.25), 0.05));
	test_cond("full again after 0.5 s", ft_bucket_wait(&b, 5, 100.5) == 0);
	ft_bucket_take(&b, 2, 200);
	test_cond("take after a long idle starts from full",
		  b.tokens == 3 && ft_bucket_wait(&b, 3, 200) == 0);
	test_cond("more than capacity waits for a full bucket",
		  ft_bucket_wait(&b, 50, 200) == 0.2);
	ft_bucket_take(&b, 50, 200.2);
	test_cond("... and goes into debt", near(b.tokens, -45));
	test_cond("debt is repaid before the next unit", near(ft_bucket_wait(&b, 1, 200.2), 4.6));

	/* a stale time (before the last update) does not run the clock back */
	ft_bucket_init(&b, 60, 0, 10);
	ft_bucket_take(&b, 1, 10);
	test_cond("stale now waits from the last update", ft_bucket_wait(&b, 1, 9) == 2);
	ft_bucket_take(&b, 0, 5);
	test_cond("stale take keeps state", b.at == 10 && b.tokens == 0);

	/* tokens per minute: estimates, then the reply's real usage */
	ft_bucket_init(&b, 30000, 0, 0);
	test_cond("TPM capacity: one second = 500", b.capacity == 500);
	test_cond("a 2000-token request waits for nothing when full",
		  ft_bucket_wait(&b, 2000, 0) == 0);
	ft_bucket_take(&b, 2000, 0);
	test_cond("debt of 1500", b.tokens == -1500);
	test_cond("next large request waits 4 s", ft_bucket_wait(&b, 2000, 0) == 4);
	ft_bucket_adjust(&b, 100);
	test_cond("adjust: used 100 more", b.tokens == -1600 && ft_bucket_wait(&b, 2000, 0) == 4.2);
	ft_bucket_adjust(&b, -1000);
	test_cond("adjust: used 1000 fewer", b.tokens == -600);
	ft_bucket_adjust(&b, -1e9);
	test_cond("giving back stops at capacity", b.tokens == 500);
	ft_bucket_adjust(&b, NAN);
	ft_bucket_adjust(&b, INFINITY);
	test_cond("non-finite adjust ignored", b.tokens == 500);
	ft_bucket_take(&b, NAN, 1);
	test_cond("NaN take ignored", b.tokens == 500);
	test_cond("NaN or negative n needs nothing",
		  ft_bucket_wait(&b, NAN, 1) == 0 && ft_bucket_wait(&b, -5, 1) == 0);
	ft_bucket_take(&b, 1, NAN);
	test_cond("NaN now: no accrual, still taken", b.at == 1 && b.tokens == 499);
}

static void test_pause(void)
{
	struct ft_bucket b;
	ft_bucket_init(&b, 600, 5, 10);
	ft_bucket_take(&b, 5, 10);
	ft_bucket_pause_until(&b, 12);
	test_cond("pause longer than accrual wins", ft_bucket_wait(&b, 5, 10) == 2);
	test_cond("pause counts down", ft_bucket_wait(&b, 1, 11.5) == 0.5);
	ft_bucket_pause_until(&b, 11);
	test_cond("an earlier pause does not shorten it", ft_bucket_wait(&b, 1, 10) == 2);
	ft_bucket_pause_until(&b, NAN);
	test_cond("NaN pause ignored", b.paused_until == 12);
	test_cond("accrual went on during the pause", ft_bucket_wait(&b, 5, 12) == 0);
	ft_bucket_pause_until(&b, 20);
	test_cond("full but paused", ft_bucket_wait(&b, 1, 12) == 8);
	test_cond("after the pause", ft_bucket_wait(&b, 1, 20) == 0);
}

static void test_unlimited(void)
{
	struct ft_bucket b;
	ft_bucket_init(&b, 0, 0, 0);
	test_cond("unlimited has rate 0", b.rate == 0);
	for (int i = 0; i < 1000; i++)
		ft_bucket_take(&b, 1e6, i * 0.001);
	test_cond("unlimited never waits", ft_bucket_wait(&b, 1e12, 1) == 0);
	ft_bucket_pause_until(&b, 30);
	test_cond("unlimited still honours a pause", ft_bucket_wait(&b, 1, 10) == 20);

	ft_bucket_init(&b, -5, 0, 0);
	test_cond("negative per_minute is unlimited", b.rate == 0);
	ft_bucket_init(&b, NAN, NAN, NAN);
	test_cond("NaN arguments: unlimited, capacity 1, time 0",
		  b.rate == 0 && b.capacity == 1 && b.at == 0 && ft_bucket_wait(&b, 1, 0) == 0);
	ft_bucket_init(&b, INFINITY, 0, 0);
	test_cond("infinite per_minute is unlimited", b.rate == 0);
	ft_bucket_init(&b, 6, 0, 0);
	test_cond("capacity at least 1 unit", b.capacity == 1);
}

static void test_observe(void)
{
	struct ft_bucket b;

	/* rule 1: a lower limit becomes the rate, burst window kept */
	ft_bucket_init(&b, 1200, 10, 0);   /* 20/s, 0.5 s window */
	ft_ratelimit_observe(&b, 600, NAN, NAN, 0);
	test_cond("lower limit adopted", b.rate == 10);
	test_cond("capacity keeps the burst window", b.capacity == 5 && b.tokens == 5);
	ft_ratelimit_observe(&b, 6000, -1, -1, 0);
	test_cond("a higher limit never raises the rate", b.rate == 10 && b.capacity == 5);
	ft_ratelimit_observe(&b, 60, NAN, NAN, 0);
	test_cond("capacity never below 1", b.rate == 1 && b.capacity == 1);

	ft_bucket_init(&b, 60, 100, 0);
	ft_ratelimit_observe(&b, 60, NAN, NAN, 0);
	test_cond("capacity never above the limit", b.capacity == 60 && b.tokens == 60);

	ft_bucket_init(&b, 0, 0, 0);
	ft_ratelimit_observe(&b, 120, NAN, NAN, 0);
	test_cond("an unlimited bucket learns the limit, full",
		  b.rate == 2 && b.capacity == 2 && b.tokens == 2);
	ft_bucket_init(&b, 0, 0, 0);
	ft_ratelimit_observe(&b, NAN, 0, 100, 0);
	test_cond("unlimited without a limit stays unlimited",
		  b.rate == 0 && ft_bucket_wait(&b, 1, 0) == 0);

	/* rule 2: fewer remaining lowers tokens, more does not raise them */
	ft_bucket_init(&b, 6000, 100, 0);   /* 100/s */
	ft_ratelimit_observe(&b, NAN, 40, NAN, 0);
	test_cond("remaining lowers tokens", b.tokens == 40);
	test_cond("... and the wait follows", ft_bucket_wait(&b, 50, 0) == 0.1);
	ft_ratelimit_observe(&b, NAN, 90, NAN, 0);
	test_cond("more remaining does not raise tokens", b.tokens == 40);
	ft_ratelimit_observe(&b, NAN, 90, NAN, 0.5);
	test_cond("observe accrues up to now first", b.tokens == 90 && b.at == 0.5);

	/* rule 3 under OpenAI's continuous refill: reset = (limit - remaining)
	 * / rate, so limit - rate * reset is remaining: no extra effect */
	ft_bucket_init(&b, 6000, 100, 0);
	ft_ratelimit_observe(&b, 6000, 40, (6000 - 40) / 100.0, 0);
	test_cond("continuous refill: reset agrees with remaining", near(b.tokens, 40));

	/* rule 3 with a server that refills much slower (a daily limit of 200
	 * in the same headers): debt until the server's reset */
	ft_bucket_init(&b, 60, 0, 0);
	ft_ratelimit_observe(&b, 200, 150, 21600, 0);
	test_cond("slow server refill becomes debt", b.tokens == 200 - 21600);
	test_cond("... waited out over the reset", ft_bucket_wait(&b, 1, 0) == 21401);

	/* missing headers change nothing */
	ft_bucket_init(&b, 600, 5, 0);
	ft_bucket_take(&b, 2, 0);
	struct ft_bucket before = b;
	ft_ratelimit_observe(&b, NAN, NAN, NAN, 0);
	ft_ratelimit_observe(&b, -1, -1, -1, 0);
	ft_ratelimit_observe(&b, INFINITY, INFINITY, INFINITY, 0);
	ft_ratelimit_observe(&b, 0, NAN, 5, 0);
	test_cond("missing or nonsense headers ignored", memcmp(&b, &before, sizeof b) == 0);
}

static void test_duration(void)
{
	static const struct { const char *s; double want; } ok[] = {
		{ "1s", 1 }, { "6m0s", 360 }, { "850ms", 0.85 }, { "1h2m3.5s", 3723.5 },
		{ "0s", 0 }, { "0", 0 }, { "20ms", 0.02 }, { "1.5s", 1.5 }, { "7.66s", 7.66 },
		{ "1m30s", 90 }, { "2h", 7200 }, { ".5s", 0.5 }, { "1.s", 1 },
		{ "500us", 5e-4 }, { "500\xc2\xb5s", 5e-4 }, { "500\xce\xbcs", 5e-4 },
		{ "100ns", 1e-7 }, { "1m0.001s", 60.001 }, { " 2s\r\n", 2 }, { "\t3m ", 180 },
		{ "1000000000s", 1e9 }, { "1s1s", 2 }, { "000001s", 1 },
		{ "1.123456789012345678999s", 1.123456789012345678 },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		double got = -1;
		char what[120];
		snprintf(what, sizeof what, "duration '%s'", ok[i].s);
		test_cond(what, ft_ratelimit_duration(ok[i].s, &got) == 0 && near(got, ok[i].want));
	}
	double exact;
	ft_ratelimit_duration("850ms", &exact);
	test_cond("850ms is the double nearest 0.85", exact == 0.85);
	ft_ratelimit_duration("1h2m3.5s", &exact);
	test_cond("1h2m3.5s is exact", exact == 3723.5);

	static const char *bad[] = {
		"", " ", "\r\n", "1", "s", "ms", "-1s", "+1s", "1x", "1S", "1 s", "1.2.3s",
		"abc", "1h-2m", "1e3s", "nan", "inf", "infs", "1ss", ".s", ".", "1s,2s",
		"0x10s", "1000000001s", "277778h", "16666667m", "1000000000000000000s",
		"9999999999999999999ns", "1h\x01", "1\xc2s", "5\xc2\xb5",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		double got = -7;
		char what[120];
		snprintf(what, sizeof what, "duration '%s' refused", bad[i]);
		test_cond(what, ft_ratelimit_duration(bad[i], &got) == FT_E_PARSE && got == -7);
	}

	/* bounded: a long value is refused, however valid its parts */
	char lng[400] = "";
	for (int i = 0; i < 150; i++)
		strcat(lng, "1s");
	double got = -7;
	test_cond("overlong value refused", ft_ratelimit_duration(lng, &got) == FT_E_PARSE);
	lng[200] = 0;   /* 100 components, 200 bytes */
	test_cond("many components within the bound", ft_ratelimit_duration(lng, &got) == 0 &&
		  got == 100);
	test_cond("NULL is FT_E_INVAL", ft_ratelimit_duration(NULL, &got) == FT_E_INVAL &&
		  ft_ratelimit_duration("1s", NULL) == FT_E_INVAL);
}

static void test_retry_after(void)
{
	double s = -7;
	test_cond("delta-seconds", ft_retry_after("120", 0, &s) == 0 && s == 120);
	test_cond("zero with spaces", ft_retry_after(" 0 \r\n", 0, &s) == 0 && s == 0);
	test_cond("delta ignores now (NaN)", ft_retry_after("5", NAN, &s) == 0 && s == 5);

	/* 1994-11-06: 24 years since 1970 with 6 leap days = 8766 days, Jan-Oct
	 * 1994 = 304 days, 5 more = 9075 days = 784080000 s; 08:49:37 = 31777 s */
	const char *rfc = "Sun, 06 Nov 1994 08:49:37 GMT";
	test_cond("HTTP-date ahead of now",
		  ft_retry_after(rfc, 784111777.0 - 10, &s) == 0 && s == 10);
	test_cond("HTTP-date with fractional now",
		  ft_retry_after(rfc, 784111777.0 - 0.25, &s) == 0 && s == 0.25);
	test_cond("HTTP-date in the past clamps to 0",
		  ft_retry_after(rfc, 784111777.0 + 100, &s) == 0 && s == 0);
	test_cond("the RFC 9110 example date",
		  ft_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0 - 30, &s) == 0 &&
		  s == 30);
	test_cond("leap day", ft_retry_after("Thu, 29 Feb 2024 00:00:00 GMT", 1709164800.0 - 1,
					     &s) == 0 && s == 1);
	test_cond("epoch", ft_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", -3, &s) == 0 && s == 3);
	test_cond("year 2000 (leap century)",
		  ft_retry_after("Sat, 01 Jan 2000 00:00:00 GMT", 946684800.0 - 2, &s) == 0 && s == 2);
	test_cond("leap second accepted",
		  ft_retry_after("Sun, 06 Nov 1994 08:49:60 GMT", 784111777.0, &s) == 0 && s == 23);
	test_cond("weekday not checked against the date",
		  ft_retry_after("Mon, 06 Nov 1994 08:49:37 GMT", 784111777.0 - 1, &s) == 0 && s == 1);
	test_cond("HTTP-date needs a finite now",
		  ft_retry_after(rfc, NAN, &s) == FT_E_INVAL &&
		  ft_retry_after(rfc, INFINITY, &s) == FT_E_INVAL);

	static const char *bad[] = {
		"", "  ", "-1", "+1", "1.5", "12abc", "1 2", "0x10", "abc",
		"9999999999999999999", "1000000001",
		"sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 94 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994", "Sun, 31 Apr 1994 08:49:37 GMT",
		"Tue, 29 Feb 2023 00:00:00 GMT", "Mon, 29 Feb 1900 00:00:00 GMT",
		"Sun, 00 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
		"Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 06 Nov 1994 08:49:61 GMT",
		"Sun, 06 Nov 1994 08:49:3a GMT", "Sun, 06 Nov 1994 08-49-37 GMT",
		"Sun, 06 Nov -994 08:49:37 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 08:49:37 GMTX", "Fri, 31 Dec 9999 23:59:59 GMT",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		s = -7;
		char what[120];
		snprintf(what, sizeof what, "retry-after '%s' refused", bad[i]);
		test_cond(what, ft_retry_after(bad[i], 0, &s) == FT_E_PARSE && s == -7);
	}
	test_cond("NULL is FT_E_INVAL", ft_retry_after(NULL, 0, &s) == FT_E_INVAL &&
		  ft_retry_after("1", 0, NULL) == FT_E_INVAL);
}

static void test_retry_after_ms(void)
{
	double s = -7;
	test_cond("ms", ft_retry_after_ms("1500", &s) == 0 && s == 1.5);
	test_cond("ms small", ft_retry_after_ms("20", &s) == 0 && s == 0.02);
	test_cond("ms fraction", ft_retry_after_ms("0.5", &s) == 0 && s == 0.0005);
	test_cond("ms trimmed", ft_retry_after_ms(" 250 \r\n", &s) == 0 && s == 0.25);
	test_cond("ms zero", ft_retry_after_ms("0", &s) == 0 && s == 0);
	test_cond("ms at the bound", ft_retry_after_ms("1000000000000", &s) == 0 && s == 1e9);
	static const char *bad[] = {
		"", "-5", "+5", "abc", "1e3", "5ms", "1.2.3", "1 000", ".", "nan",
		"1000000000001", "9999999999999999999",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		s = -7;
		char what[120];
		snprintf(what, sizeof what, "retry-after-ms '%s' refused", bad[i]);
		test_cond(what, ft_retry_after_ms(bad[i], &s) == FT_E_PARSE && s == -7);
	}
	test_cond("NULL is FT_E_INVAL", ft_retry_after_ms(NULL, &s) == FT_E_INVAL);
}

static void test_backoff(void)
{
	uint64_t rng = 42;
	bool in_bounds = true;
	for (int a = 0; a < 20; a++)
		for (int k = 0; k < 200; k++) {
			double ceiling = fmin(30, 0.5 * pow(2, a));
			double d = ft_backoff(a, 0.5, 30, &rng);
			in_bounds &= d >= 0 && d < ceiling;
		}
	test_cond("within [0, min(cap, base * 2^attempt))", in_bounds);

	uint64_t r1 = 7, r2 = 7, r3 = 8;
	bool same = true, differs = false;
	for (int k = 0; k < 100; k++) {
		double x = ft_backoff(k % 10, 1, 60, &r1), y = ft_backoff(k % 10, 1, 60, &r2);
		same &= x == y;
		differs |= x != ft_backoff(k % 10, 1, 60, &r3);
	}
	test_cond("same state, same delays", same && r1 == r2);
	test_cond("another seed, other delays", differs);

	uint64_t r0 = 0;
	double first = ft_backoff(0, 1, 10, &r0);
	test_cond("seed 0 works and advances", r0 != 0 && first >= 0 && first < 1);

	/* full jitter: the mean is half the ceiling */
	rng = 1;
	double sum = 0;
	for (int k = 0; k < 20000; k++)
		sum += ft_backoff(3, 1, 100, &rng);
	test_cond("mean about half of 8", fabs(sum / 20000 - 4) < 0.1);

	rng = 1;
	bool capped = true;
	for (int a = 60; a < 70; a++)
		capped &= ft_backoff(a, 1, 5, &rng) < 5;
	capped &= ft_backoff(INT_MAX, 1, 5, &rng) < 5;
	capped &= ft_backoff(1100, 1e300, 5, &rng) < 5;
	test_cond("huge attempts stay under the cap", capped);

	rng = 1;
	test_cond("nonsense gives 0",
		  ft_backoff(-1, 1, 5, &rng) == 0 && ft_backoff(1, NAN, 5, &rng) == 0 &&
		  ft_backoff(1, 1, NAN, &rng) == 0 && ft_backoff(1, 0, 5, &rng) == 0 &&
		  ft_backoff(1, 1, 0, &rng) == 0 && ft_backoff(1, 1, INFINITY, &rng) == 0 &&
		  ft_backoff(1, INFINITY, 5, &rng) == 0 && ft_backoff(1, -1, 5, &rng) == 0 &&
		  ft_backoff(1, 1, 5, NULL) == 0);
}

int main(void)
{
	test_bucket();
	test_pause();
	test_unlimited();
	test_observe();
	test_duration();
	test_retry_after();
	test_retry_after_ms();
	test_backoff();
	return test_report();
}
