/* client.c: the libcurl multi loop behind ft-augment (see client.h).
 * Easy handles are kept, one per slot of the in-flight limit, so
 * connections are reused across requests (keep-alive, and HTTP/2
 * multiplexing where the server offers it). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "client.h"
#include "ratelimit.h"

struct xfer {
	CURL *h;
	bool busy, done;
	CURLcode code;
	char errbuf[CURL_ERROR_SIZE];
	struct client_result res;
};

struct client {
	CURLM *multi;
	struct curl_slist *headers;
	char *url;
	long timeout_ms;
	struct xfer *x;
	int n, in_flight;
	struct xfer *returned;    /* handed out by client_next, freed on the next call */
};

static void result_clear(struct client_result *r)
{
	r->transport_error = r->unresolved = false;
	r->status = 0;
	ft_buf_reset(&r->body);
	r->error[0] = 0;
	r->limit_requests = r->remaining_requests = r->limit_tokens = r->remaining_tokens = -1;
	r->reset_requests = r->reset_tokens = NAN;
	r->retry_after = -1;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	return ft_buf_append(&x->res.body, p, size * n) ? 0 : size * n;
}

static double header_number(const char *v)
{
	char *end;
	double d = strtod(v, &end);
	while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
		end++;
	return end == v || *end || !isfinite(d) || d < 0 ? -1 : d;
}

static double header_duration(const char *v)
{
	double s;
	return ft_ratelimit_duration(v, &s) ? NAN : s;
}

/* One header line "Name: value\r\n" (also the status line and the blank
 * line, ignored). A later 1xx/redirect reply's headers would be mixed in,
 * but ft-augment follows no redirects and sends no Expect. */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	struct client_result *r = &x->res;
	size_t len = size * n;
	char line[512];
	if (len >= sizeof line)
		return len;
	memcpy(line, p, len);
	line[len] = 0;
	char *colon = strchr(line, ':');
	if (!colon)
		return len;
	*colon = 0;
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (!strcasecmp(line, "x-ratelimit-limit-requests"))
		r->limit_requests = header_number(v);
	else if (!strcasecmp(line, "x-ratelimit-remaining-requests"))
		r->remaining_requests = header_number(v);
	else if (!strcasecmp(line, "x-ratelimit-reset-requests"))
		r->reset_requests = header_duration(v);
	else if (!strcasecmp(line, "x-ratelimit-limit-tokens"))
		r->limit_tokens = header_number(v);
	else if (!strcasecmp(line, "x-ratelimit-remaining-tokens"))
		r->remaining_tokens = header_number(v);
	else if (!strcasecmp(line, "x-ratelimit-reset-tokens"))
		r->reset_tokens = header_duration(v);
	else if (!strcasecmp(line, "retry-after-ms")) {
		double s;
		if (!ft_retry_after_ms(v, &s))
			r->retry_after = s;
	} else if (!strcasecmp(line, "retry-after") && r->retry_after < 0) {
		double s;
		if (!ft_retry_after(v, (double)time(NULL), &s))
			r->retry_after = s;
	}
	return len;
}

#define CK(call)                                                                       \
	do {                                                                           \
		CURLcode rc_ = (call);                                                 \
		if (rc_ != CURLE_OK)                                                   \
			return ft_err_set(err, FT_E_IO, "libcurl: %s: %s", #call,     \
					  curl_easy_strerror(rc_));                    \
	} while (0)

int client_open(struct client **out, const char *url, const char *key, int max_in_flight,
		double timeout_s, struct ft_err *err)
{
	*out = NULL;
	static bool global_done;
	if (!global_done) {
		CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
		if (rc != CURLE_OK)
			return ft_err_set(err, FT_E_IO, "libcurl: cannot initialise: %s",
					  curl_easy_strerror(rc));
		global_done = true;
	}
	struct client *c = calloc(1, sizeof *c);
	if (!c)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	*out = c;
	c->n = max_in_flight;
	c->timeout_ms = (long)(timeout_s * 1000);
	c->url = strdup(url);
	c->x = calloc((size_t)c->n, sizeof *c->x);
	c->multi = curl_multi_init();
	if (!c->url || !c->x || !c->multi)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	CURLMcode mc = curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)c->n);
	if (mc != CURLM_OK)
		return ft_err_set(err, FT_E_IO, "libcurl: %s", curl_multi_strerror(mc));
	const char *fixed[] = { "Content-Type: application/json", "Accept: application/json",
				"Expect:" };
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
		struct curl_slist *l = curl_slist_append(c->headers, fixed[i]);
		if (!l)
			return ft_err_set(err, FT_E_NOMEM, "out of memory");
		c->headers = l;
	}
	if (key) {
		struct ft_buf auth;
		ft_buf_init(&auth, 0);
		int rc = ft_buf_printf(&auth, "Authorization: Bearer %s", key);
		struct curl_slist *l = rc ? NULL : curl_slist_append(c->headers, auth.data);
		/* the slist keeps its own copy: wipe ours */
		if (auth.data)
			memset(auth.data, 0, auth.len);
		ft_buf_release(&auth);
		if (!l)
			return ft_err_set(err, FT_E_NOMEM, "out of memory");
		c->headers = l;
	}
	for (int i = 0; i < c->n; i++) {
		struct xfer *x = &c->x[i];
		ft_buf_init(&x->res.body, CLIENT_MAX_BODY);
		x->h = curl_easy_init();
		if (!x->h)
			return ft_err_set(err, FT_E_NOMEM, "libcurl: cannot make a handle");
		CURL *h = x->h;
		CK(curl_easy_setopt(h, CURLOPT_URL, c->url));
		CK(curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https"));
		CK(curl_easy_setopt(h, CURLOPT_POST, 1L));
		CK(curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers));
		CK(curl_easy_setopt(h, CURLOPT_USERAGENT, "ft-augment/0.1"));
		CK(curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""));
		CK(curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L));
		CK(curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L));
		CK(curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms));
		CK(curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
				    c->timeout_ms < 30000 ? c->timeout_ms : 30000L));
		CK(curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf));
		CK(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body));
		CK(curl_easy_setopt(h, CURLOPT_WRITEDATA, x));
		CK(curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header));
		CK(curl_easy_setopt(h, CURLOPT_HEADERDATA, x));
		CK(curl_easy_setopt(h, CURLOPT_PRIVATE, x));
	}
	return 0;
}

void client_close(struct client *c)
{
	if (!c)
		return;
	for (int i = 0; c->x && i < c->n; i++) {
		if (c->x[i].h) {
			if (c->x[i].busy && c->multi)
				curl_multi_remove_handle(c->multi, c->x[i].h);
			curl_easy_cleanup(c->x[i].h);
		}
		ft_buf_release(&c->x[i].res.body);
	}
	if (c->multi)
		curl_multi_cleanup(c->multi);
	/* the header list holds the key: wipe it before it is freed */
	for (struct curl_slist *l = c->headers; l; l = l->next)
		memset(l->data, 0, strlen(l->data));
	curl_slist_free_all(c->headers);
	free(c->x);
	free(c->url);
	free(c);
}

int client_in_flight(const struct client *c)
{
	return c->in_flight;
}

int client_start(struct client *c, void *user, const char *body, size_t len,
		 struct ft_err *err)
{
	struct xfer *x = NULL;
	for (int i = 0; i < c->n && !x; i++)
		if (!c->x[i].busy)
			x = &c->x[i];
	if (!x)
		return ft_err_set(err, FT_E_INVAL, "no free transfer slot");
	CK(curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len));
	CK(curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, body));
	result_clear(&x->res);
	x->res.user = user;
	x->errbuf[0] = 0;
	x->done = false;
	CURLMcode mc = curl_multi_add_handle(c->multi, x->h);
	if (mc != CURLM_OK)
		return ft_err_set(err, FT_E_IO, "libcurl: %s", curl_multi_strerror(mc));
	x->busy = true;
	c->in_flight++;
	return 0;
}

int client_poll(struct client *c, int timeout_ms, struct ft_err *err)
{
	int running;
	CURLMcode mc = curl_multi_perform(c->multi, &running);
	if (mc == CURLM_OK && timeout_ms > 0)
		mc = curl_multi_poll(c->multi, NULL, 0, timeout_ms, NULL);
	if (mc == CURLM_OK)
		mc = curl_multi_perform(c->multi, &running);
	if (mc != CURLM_OK)
		return ft_err_set(err, FT_E_IO, "libcurl: %s", curl_multi_strerror(mc));
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(c->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct xfer *x = NULL;
		if (curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x) != CURLE_OK ||
		    !x)
			return ft_err_set(err, FT_E_IO, "libcurl: a finished transfer is unknown");
		x->code = m->data.result;
		x->done = true;
	}
	return 0;
}

int client_next(struct client *c, struct client_result **res)
{
	if (c->returned) {
		c->returned->busy = c->returned->done = false;
		c->returned = NULL;
	}
	for (int i = 0; i < c->n; i++) {
		struct xfer *x = &c->x[i];
		if (!x->busy || !x->done)
			continue;
		CURLMcode mc = curl_multi_remove_handle(c->multi, x->h);
		c->in_flight--;
		struct client_result *r = &x->res;
		if (mc != CURLM_OK) {
			r->transport_error = true;
			snprintf(r->error, sizeof r->error, "libcurl: %s", curl_multi_strerror(mc));
		} else if (x->code != CURLE_OK) {
			r->transport_error = true;
			r->unresolved = x->code == CURLE_COULDNT_RESOLVE_HOST;
			if (x->code == CURLE_WRITE_ERROR && r->body.len >= CLIENT_MAX_BODY / 2)
				snprintf(r->error, sizeof r->error, "reply body over %zu bytes",
					 CLIENT_MAX_BODY);
			else
				snprintf(r->error, sizeof r->error, "%s%s%.200s",
					 curl_easy_strerror(x->code), x->errbuf[0] ? ": " : "",
					 x->errbuf);
		} else if (curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &r->status) !=
			   CURLE_OK) {
			r->transport_error = true;
			snprintf(r->error, sizeof r->error, "no HTTP status");
		}
		c->returned = x;
		*res = r;
		return 1;
	}
	return 0;
}
