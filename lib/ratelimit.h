/* ratelimit.h: rate-limit arithmetic for API clients: a token bucket that
 * can run into debt and be paused, parsers for the servers' rate-limit and
 * retry-after headers, the rule that adapts a bucket to those headers, and
 * jittered exponential backoff. Pure and deterministic: time comes in as
 * seconds (any fixed origin for buckets, the Unix epoch for HTTP dates), no
 * clock is read, no allocation, no global state. Parsers ignore spaces,
 * tabs, CR and LF around a value, return 0 or FT_E_PARSE (FT_E_INVAL for
 * NULL arguments) and leave *seconds unchanged on failure. */
#ifndef FT_RATELIMIT_H
#define FT_RATELIMIT_H

#include <stdint.h>

/* Accrual window of a bucket whose burst is not given: one second of its
 * rate. OpenAI notes that per-minute limits may be enforced over shorter
 * periods (60,000 requests/minute as 1,000/second), so a full minute's
 * worth at once would be refused. */
#define FT_BUCKET_BURST_S 1.0

/* Longest delay a parser accepts (about 31 years); more is an overflow. */
#define FT_RATELIMIT_MAX_S 1e9

/* Units (requests or tokens) accrue at rate per second up to capacity.
 * tokens may go negative: debt, repaid by accrual before the next send. A
 * request larger than the capacity waits for a full bucket and then goes
 * into debt, so the long-run rate still holds. */
struct ft_bucket {
	double rate;          /* units per second; 0 = unlimited */
	double capacity;      /* most units that accrue while idle */
	double tokens;        /* units available at time `at`; < 0 is debt */
	double at;            /* time tokens was last brought up to date */
	double paused_until;  /* no sends before this time (a 429's retry-after) */
};

/* A full bucket for per_minute units a minute (0, or anything not a
 * positive finite number: unlimited) holding at most burst units (burst <=
 * 0: FT_BUCKET_BURST_S seconds of the rate), never less than 1 unit. */
void ft_bucket_init(struct ft_bucket *b, double per_minute, double burst, double now);
/* Seconds from now until n units may be taken (0: now): the pause, and the
 * accrual up to min(n, capacity). An unlimited bucket waits only for the
 * pause. */
double ft_bucket_wait(const struct ft_bucket *b, double n, double now);
/* Take n units at now (after waiting for them, or not: the excess is debt). */
void ft_bucket_take(struct ft_bucket *b, double n, double now);
/* Take extra more units than were taken, once the real count is known (a
 * reply's usage against the estimate); negative extra gives units back, up
 * to the capacity. */
void ft_bucket_adjust(struct ft_bucket *b, double extra);
/* Hold sends until time t (a later pause wins); accrual goes on meanwhile,
 * as it does on the server. */
void ft_bucket_pause_until(struct ft_bucket *b, double t);

/* Adapt b to one reply's view from the server: limit (units per minute, as
 * in OpenAI's x-ratelimit-limit-*), remaining (x-ratelimit-remaining-*) and
 * reset_seconds (x-ratelimit-reset-*: time until the server is back at
 * limit). Pass a negative number or NaN for a missing header. The rule,
 * which only ever makes the bucket stricter, so a stale header from an
 * older reply can slow sends but never cause a 429:
 *  1. a limit below the bucket's rate * 60 (or any limit for an unlimited
 *     bucket) becomes its rate; capacity scales with it and never exceeds
 *     limit;
 *  2. tokens drop to remaining when the server reports fewer;
 *  3. tokens drop to limit - rate * reset_seconds when that is lower: the
 *     server promises only limit units by then, so a server that refills
 *     slower than rate (a daily limit in the same headers) turns into
 *     debt. With OpenAI's continuous refill this equals rule 2. */
void ft_ratelimit_observe(struct ft_bucket *b, double limit, double remaining,
			  double reset_seconds, double now);

/* Parse OpenAI's x-ratelimit-reset-* value, a Go duration: one or more
 * decimal numbers each with a unit h, m, s, ms, us (or µs), ns, as in "1s",
 * "6m0s", "850ms", "1h2m3.5s", or a bare "0". No sign, at most
 * FT_RATELIMIT_MAX_S. */
int ft_ratelimit_duration(const char *s, double *seconds);
/* Parse an HTTP Retry-After value (RFC 9110 10.2.3): delta-seconds (a
 * non-negative integer) or an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT")
 * taken relative to now_epoch and clamped at 0 when past. The obsolete
 * RFC 850 and asctime date forms are refused. */
int ft_retry_after(const char *value, double now_epoch, double *seconds);
/* Parse a retry-after-ms value: non-negative milliseconds, fraction allowed. */
int ft_retry_after_ms(const char *value, double *seconds);

/* Seconds to wait before retry number attempt (0 for the first retry):
 * uniform in [0, min(cap, base * 2^attempt)) ("full jitter", AWS
 * Architecture Blog, "Exponential Backoff and Jitter", 2015). rng is the
 * caller's state, any seed; the result depends only on it and the
 * arguments. Nonsense arguments (negative, NaN) give 0. */
double ft_backoff(int attempt, double base, double cap, uint64_t *rng);

#endif
