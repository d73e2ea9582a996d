/* client.h: ft-augment's HTTP side: POSTs to one chat-completions URL
 * through libcurl's multi interface, many in flight on one thread. It knows
 * nothing of records, retries or rate limits; it sends what it is given and
 * hands back, per transfer, what came back: the transport error or the
 * status, body and the headers the policy needs (rate limits, retry-after).
 * The API key goes into the Authorization header and nowhere else. */
#ifndef FT_AUGMENT_CLIENT_H
#define FT_AUGMENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "ft.h"

/* Largest reply body accepted; a longer one fails the transfer. */
#define CLIENT_MAX_BODY ((size_t)16 << 20)

struct client;

/* One finished transfer. Header values are -1 (NaN for reset times) when
 * the reply did not carry them. */
struct client_result {
	void *user;
	bool transport_error;     /* no complete HTTP reply: error says why */
	bool unresolved;          /* the host name did not resolve */
	long status;              /* HTTP status when !transport_error */
	struct ft_buf body;       /* the reply body (owned by the client until the next call) */
	char error[256];          /* transport error text */
	double limit_requests, remaining_requests, reset_requests;
	double limit_tokens, remaining_tokens, reset_tokens;
	double retry_after;       /* seconds, from retry-after-ms or retry-after */
};

/* url: the full endpoint; key: the bearer token or NULL (no Authorization
 * header); timeout_s: whole-transfer limit. */
int client_open(struct client **c, const char *url, const char *key, int max_in_flight,
		double timeout_s, struct ft_err *err);
void client_close(struct client *c);
int client_in_flight(const struct client *c);

/* Start a POST of body[0..len) (JSON; borrowed until the transfer is done). */
int client_start(struct client *c, void *user, const char *body, size_t len,
		 struct ft_err *err);
/* Drive the transfers, waiting at most timeout_ms for something to do. */
int client_poll(struct client *c, int timeout_ms, struct ft_err *err);
/* The next finished transfer: 1 and *res filled (valid until the next
 * call), 0 when none is waiting. */
int client_next(struct client *c, struct client_result **res);

#endif
