/* ratelimit.c: token buckets, rate-limit header parsing, backoff (contract
 * in ratelimit.h). Every function is total: NaN, infinities and hostile
 * strings give a refusal or a harmless value, never undefined behaviour.
 * Parsers look at a bounded, trimmed copy of the value (start and length),
 * never past it. */
#include "ratelimit.h"
#include "hash.h"
#include "ft.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* longest header value looked at; real ones are under 40 bytes */
#define VALUE_MAX 256
/* digits kept from one number; 18 keeps the integer part exact in a double
 * up to 2^53 and its value far from overflow */
#define DIGITS_MAX 18

/* ---- token bucket ---- */

/* Units in b at time now, without changing b. A time before b->at (a
 * stale caller) sees the units at b->at: time never runs backwards here. */
static double tokens_at(const struct ft_bucket *b, double now)
{
	if (!(now > b->at) || b->rate <= 0)
		return b->tokens;
	double t = b->tokens + b->rate * (now - b->at);
	return t < b->capacity ? t : b->capacity;
}

static void advance(struct ft_bucket *b, double now)
{
	if (isfinite(now) && now > b->at) {
		b->tokens = tokens_at(b, now);
		b->at = now;
	}
}

void ft_bucket_init(struct ft_bucket *b, double per_minute, double burst, double now)
{
	if (!isfinite(now))
		now = 0;
	b->rate = isfinite(per_minute) && per_minute > 0 ? per_minute / 60 : 0;
	b->capacity = isfinite(burst) && burst > 0 ? burst : b->rate * FT_BUCKET_BURST_S;
	if (!(b->capacity >= 1))
		b->capacity = 1;
	b->tokens = b->capacity;
	b->at = now;
	b->paused_until = now;
}

double ft_bucket_wait(const struct ft_bucket *b, double n, double now)
{
	if (!isfinite(now))
		now = b->at;
	double wait = b->paused_until > now ? b->paused_until - now : 0;
	if (b->rate <= 0 || !(n > 0))
		return wait;
	/* more than the capacity can never accrue: wait for a full bucket */
	double need = n < b->capacity ? n : b->capacity;
	double have = tokens_at(b, now);
	if (have < need) {
		double from = now > b->at ? now : b->at;
		double accrue = (from - now) + (need - have) / b->rate;
		if (accrue > wait)
			wait = accrue;
	}
	return wait;
}

void ft_bucket_adjust(struct ft_bucket *b, double extra)
{
	if (b->rate <= 0 || !isfinite(extra))
		return;
	b->tokens -= extra;
	if (b->tokens > b->capacity)
		b->tokens = b->capacity;
}

void ft_bucket_take(struct ft_bucket *b, double n, double now)
{
	advance(b, now);
	ft_bucket_adjust(b, n);
}

void ft_bucket_pause_until(struct ft_bucket *b, double t)
{
	if (isfinite(t) && t > b->paused_until)
		b->paused_until = t;
}

void ft_ratelimit_observe(struct ft_bucket *b, double limit, double remaining,
			  double reset_seconds, double now)
{
	advance(b, now);
	int have_limit = isfinite(limit) && limit > 0;
	if (have_limit) {
		double rate = limit / 60;
		if (b->rate <= 0) {
			/* an unlimited bucket learns the limit, full as at init */
			b->rate = rate;
			b->capacity = rate * FT_BUCKET_BURST_S;
			b->tokens = INFINITY;   /* capped below */
		} else if (rate < b->rate) {
			/* keep the burst window (capacity / rate) in seconds */
			b->capacity *= rate / b->rate;
			b->rate = rate;
		}
		/* the server never grants more than limit at once */
		if (b->capacity > limit)
			b->capacity = limit;
		if (!(b->capacity >= 1))
			b->capacity = 1;
		if (b->tokens > b->capacity)
			b->tokens = b->capacity;
	}
	if (b->rate <= 0)
		return;   /* unlimited, and no limit to learn from */
	if (isfinite(remaining) && remaining >= 0 && remaining < b->tokens)
		b->tokens = remaining;
	if (have_limit && isfinite(reset_seconds) && reset_seconds >= 0) {
		double promised = limit - b->rate * reset_seconds;
		if (promised < b->tokens)
			b->tokens = promised;
	}
}

/* ---- header parsing ---- */

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The value without surrounding whitespace, as start and length; -1 when
 * it is longer than VALUE_MAX. */
static int trim(const char *s, const char **start, size_t *len)
{
	size_t n = strnlen(s, VALUE_MAX + 1);
	if (n > VALUE_MAX)
		return -1;
	while (n && is_space(s[n - 1]))
		n--;
	while (n && is_space(*s)) {
		s++;
		n--;
	}
	*start = s;
	*len = n;
	return 0;
}

/* A non-negative decimal at p[*i..n): digits, optionally '.' and more
 * digits, at least one digit in all. *i moves past it. At most DIGITS_MAX
 * integer digits; fraction digits past DIGITS_MAX are read but dropped. */
static int parse_decimal(const char *p, size_t n, size_t *i, int allow_fraction, double *value)
{
	size_t k = *i, int_digits = 0, frac_digits = 0;
	double whole = 0, frac = 0, scale = 1;
	while (k < n && is_digit(p[k])) {
		if (++int_digits > DIGITS_MAX)
			return -1;
		whole = whole * 10 + (p[k++] - '0');
	}
	if (allow_fraction && k < n && p[k] == '.') {
		k++;
		while (k < n && is_digit(p[k])) {
			if (frac_digits++ < DIGITS_MAX) {
				frac = frac * 10 + (p[k] - '0');
				scale *= 10;
			}
			k++;
		}
	}
	if (int_digits + frac_digits == 0)
		return -1;
	*value = whole + frac / scale;   /* one rounding: "3.5" is 3.5 */
	*i = k;
	return 0;
}

int ft_ratelimit_duration(const char *s, double *seconds)
{
	/* Go's time.Duration units; multiplier and divisor keep "850ms" the
	 * double nearest 0.85 (850 / 1000, not 850 * 0.001). "ms" comes
	 * before "m" so the longer unit wins. */
	static const struct { const char *name; double mul, div; } units[] = {
		{ "ns", 1, 1e9 }, { "us", 1, 1e6 }, { "\xc2\xb5s", 1, 1e6 },
		{ "\xce\xbcs", 1, 1e6 }, { "ms", 1, 1e3 }, { "h", 3600, 1 },
		{ "m", 60, 1 }, { "s", 1, 1 },
	};
	if (!s || !seconds)
		return FT_E_INVAL;
	const char *p;
	size_t n;
	if (trim(s, &p, &n) || n == 0)
		return FT_E_PARSE;
	if (n == 1 && p[0] == '0') {
		*seconds = 0;
		return FT_OK;
	}
	double total = 0;
	size_t i = 0;
	while (i < n) {
		double v;
		if (parse_decimal(p, n, &i, 1, &v))
			return FT_E_PARSE;
		size_t u = 0, nu = sizeof units / sizeof units[0];
		for (; u < nu; u++) {
			size_t len = strlen(units[u].name);
			if (n - i >= len && memcmp(p + i, units[u].name, len) == 0) {
				i += len;
				break;
			}
		}
		if (u == nu)
			return FT_E_PARSE;
		/* each term is below 1e18 * 3600 and there are at most
		 * VALUE_MAX / 2 of them: total stays finite */
		total += v * units[u].mul / units[u].div;
	}
	if (!(total <= FT_RATELIMIT_MAX_S))
		return FT_E_PARSE;
	*seconds = total;
	return FT_OK;
}

/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d (Howard
 * Hinnant, "chrono-Compatible Low-Level Date Algorithms", days_from_civil).
 * y is 0..9999 here, so nothing overflows. */
static long days_from_civil(long y, long m, long d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* n digits at p as a number, or -1 */
static long digits(const char *p, int n)
{
	long v = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* 3-letter name at p: its index in the table of 3-letter names, or -1 */
static int name3(const char *p, const char *table, int count)
{
	for (int i = 0; i < count; i++)
		if (memcmp(p, table + 3 * i, 3) == 0)
			return i;
	return -1;
}

/* IMF-fixdate (RFC 9110 5.6.7), exactly "Sun, 06 Nov 1994 08:49:37 GMT":
 * names are case-sensitive, the weekday is not checked against the date,
 * a leap second (60) is allowed. */
static int parse_imf_fixdate(const char *p, size_t n, double *epoch)
{
	static const char days[] = "MonTueWedThuFriSatSun";
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (n != 29 || name3(p, days, 7) < 0 || memcmp(p + 3, ", ", 2) != 0 || p[7] != ' ' ||
	    p[11] != ' ' || p[16] != ' ' || p[19] != ':' || p[22] != ':' ||
	    memcmp(p + 25, " GMT", 4) != 0)
		return -1;
	int mon = name3(p + 8, months, 12);
	long day = digits(p + 5, 2), year = digits(p + 12, 4);
	long hh = digits(p + 17, 2), mm = digits(p + 20, 2), ss = digits(p + 23, 2);
	if (mon < 0 || year < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
		return -1;
	int leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
	if (day < 1 || day > mdays[mon] + (mon == 1 && leap))
		return -1;
	*epoch = (double)days_from_civil(year, mon + 1, day) * 86400 + hh * 3600 + mm * 60 + ss;
	return 0;
}

int ft_retry_after(const char *value, double now_epoch, double *seconds)
{
	if (!value || !seconds)
		return FT_E_INVAL;
	const char *p;
	size_t n;
	if (trim(value, &p, &n) || n == 0)
		return FT_E_PARSE;
	if (is_digit(p[0])) {
		/* delta-seconds: digits only */
		size_t i = 0;
		double v;
		if (parse_decimal(p, n, &i, 0, &v) || i != n || v > FT_RATELIMIT_MAX_S)
			return FT_E_PARSE;
		*seconds = v;
		return FT_OK;
	}
	double when;
	if (parse_imf_fixdate(p, n, &when))
		return FT_E_PARSE;
	if (!isfinite(now_epoch))
		return FT_E_INVAL;
	double d = when - now_epoch;
	if (d < 0)
		d = 0;   /* already past: retry now */
	if (d > FT_RATELIMIT_MAX_S)
		return FT_E_PARSE;
	*seconds = d;
	return FT_OK;
}

int ft_retry_after_ms(const char *value, double *seconds)
{
	if (!value || !seconds)
		return FT_E_INVAL;
	const char *p;
	size_t n, i = 0;
	double ms;
	if (trim(value, &p, &n) || n == 0 || parse_decimal(p, n, &i, 1, &ms) || i != n ||
	    ms / 1000 > FT_RATELIMIT_MAX_S)
		return FT_E_PARSE;
	*seconds = ms / 1000;
	return FT_OK;
}

/* ---- backoff ---- */

double ft_backoff(int attempt, double base, double cap, uint64_t *rng)
{
	if (!rng || attempt < 0 || !isfinite(base) || !(base > 0) || !isfinite(cap) || !(cap > 0))
		return 0;
	/* ldexp saturates at infinity, never overflows: past the cap either way */
	double ceiling = ldexp(base, attempt < 2048 ? attempt : 2048);
	if (!(ceiling < cap))
		ceiling = cap;
	return (double)(ft_splitmix64(rng) >> 11) * 0x1p-53 * ceiling;
}
