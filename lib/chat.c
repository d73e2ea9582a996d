/* chat.c: chat-completions requests and replies (contract in chat.h). */
#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static const char *const roles[] = { "system", "user", "assistant" };

int ft_chat_check_messages(const cJSON *messages, struct ft_err *err)
{
	if (!cJSON_IsArray(messages) || !messages->child)
		return ft_err_set(err, FT_E_DATA, "messages is not a non-empty list");
	int i = 0;
	for (const cJSON *m = messages->child; m; m = m->next, i++) {
		if (!cJSON_IsObject(m))
			return ft_err_set(err, FT_E_DATA, "messages[%d] is not an object", i);
		const cJSON *role = NULL, *content = NULL;
		for (const cJSON *f = m->child; f; f = f->next) {
			if (strcmp(f->string, "role") == 0 && !role)
				role = f;
			else if (strcmp(f->string, "content") == 0 && !content)
				content = f;
			else
				return ft_err_set(err, FT_E_DATA, "messages[%d]: unexpected key '%.40s'",
						  i, f->string);
		}
		if (!cJSON_IsString(role))
			return ft_err_set(err, FT_E_DATA, "messages[%d]: role is not a string", i);
		size_t k;
		for (k = 0; k < sizeof roles / sizeof *roles; k++)
			if (strcmp(role->valuestring, roles[k]) == 0)
				break;
		if (k == sizeof roles / sizeof *roles)
			return ft_err_set(err, FT_E_DATA, "messages[%d]: role '%.40s' is not system, "
					  "user or assistant", i, role->valuestring);
		if (!cJSON_IsString(content))
			return ft_err_set(err, FT_E_DATA, "messages[%d]: content is not a string", i);
	}
	return FT_OK;
}

static int put_number(struct ft_buf *out, const char *key, double v)
{
	char num[32];
	ft_fmt_jsonfloat(v, num);
	return ft_buf_printf(out, ",\"%s\":%s", key, num);
}

int ft_chat_request(struct ft_buf *out, const struct ft_chat_params *p, const cJSON *messages,
		    struct ft_err *err)
{
	int rc = ft_chat_check_messages(messages, err);
	if (rc)
		return rc;
	if (!p->model || !*p->model)
		return ft_err_set(err, FT_E_INVAL, "no model");
	rc = ft_buf_puts(out, "{\"model\":");
	rc |= ft_json_write_string(out, p->model, strlen(p->model));
	rc |= ft_buf_puts(out, ",\"messages\":[");
	for (const cJSON *m = messages->child; m; m = m->next) {
		const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
		const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
		rc |= ft_buf_puts(out, m == messages->child ? "{\"role\":" : ",{\"role\":");
		rc |= ft_json_write_string(out, role->valuestring, strlen(role->valuestring));
		rc |= ft_buf_puts(out, ",\"content\":");
		rc |= ft_json_write_string(out, content->valuestring, strlen(content->valuestring));
		rc |= ft_buf_putc(out, '}');
	}
	rc |= ft_buf_putc(out, ']');
	if (p->has_temperature)
		rc |= put_number(out, "temperature", p->temperature);
	if (p->has_top_p)
		rc |= put_number(out, "top_p", p->top_p);
	if (p->has_max_tokens)
		rc |= ft_buf_printf(out, ",\"max_tokens\":%ld", p->max_tokens);
	if (p->has_seed)
		rc |= ft_buf_printf(out, ",\"seed\":%lld", p->seed);
	if (p->json_mode)
		rc |= ft_buf_puts(out, ",\"response_format\":{\"type\":\"json_object\"}");
	rc |= ft_buf_putc(out, '}');
	return rc ? ft_err_set(err, FT_E_NOMEM, "out of memory") : FT_OK;
}

void ft_chat_reply_release(struct ft_chat_reply *r)
{
	free(r->content);
	memset(r, 0, sizeof *r);
}

static long count_field(const cJSON *usage, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(usage, key);
	return ft_json_is_int(v) && v->valuedouble >= 0 && v->valuedouble < 1e15
		       ? (long)v->valuedouble : -1;
}

int ft_chat_parse_reply(const char *body, size_t len, struct ft_chat_reply *r,
			struct ft_err *err)
{
	memset(r, 0, sizeof *r);
	r->prompt_tokens = r->completion_tokens = -1;
	cJSON *root;
	struct ft_err perr = { 0 };
	if (ft_json_parse(body, len, &root, &perr))
		return ft_err_set(err, FT_E_PARSE, "the reply is not JSON (%s)", perr.msg);
	int rc = FT_OK;
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
	const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
	const cJSON *content = ft_json_path(root, "choices.0.message.content");
	if (!cJSON_IsObject(root)) {
		rc = ft_err_set(err, FT_E_DATA, "the reply is not a JSON object");
	} else if (error && !cJSON_IsNull(error)) {
		char ex[200];
		ft_chat_error_excerpt(body, len, ex, sizeof ex);
		rc = ft_err_set(err, FT_E_DATA, "the server answered with an error: %s", ex);
	} else if (!cJSON_IsArray(choices) || !choices->child) {
		rc = ft_err_set(err, FT_E_DATA, "the reply has no choices");
	} else if (!cJSON_IsString(content)) {
		rc = ft_err_set(err, FT_E_DATA, "the reply's first choice has no text content");
	} else {
		r->content_len = strlen(content->valuestring);
		r->content = malloc(r->content_len + 1);
		if (!r->content) {
			rc = ft_err_set(err, FT_E_NOMEM, "out of memory");
		} else {
			memcpy(r->content, content->valuestring, r->content_len + 1);
			const cJSON *fr = ft_json_path(root, "choices.0.finish_reason");
			const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
			if (cJSON_IsString(fr))
				snprintf(r->finish_reason, sizeof r->finish_reason, "%s",
					 fr->valuestring);
			if (cJSON_IsString(model))
				snprintf(r->model, sizeof r->model, "%s", model->valuestring);
			const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
			if (cJSON_IsObject(usage)) {
				r->prompt_tokens = count_field(usage, "prompt_tokens");
				r->completion_tokens = count_field(usage, "completion_tokens");
			}
		}
	}
	cJSON_Delete(root);
	if (rc)
		ft_chat_reply_release(r);
	return rc;
}

/* Copy s[0..n) into out escaping control bytes, cutting on a UTF-8 boundary. */
static void excerpt(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f) {
			if (o + 5 >= size)
				break;
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
			continue;
		}
		out[o++] = (char)c;
	}
	/* do not end inside a multi-byte character */
	size_t end = o;
	while (end > 0 && ((unsigned char)out[end - 1] & 0xC0) == 0x80)
		end--;
	if (end > 0 && ((unsigned char)out[end - 1] & 0x80)) {
		unsigned char lead = (unsigned char)out[end - 1];
		size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
		if (o - (end - 1) < need)
			o = end - 1;
	}
	out[o] = 0;
}

void ft_chat_error_excerpt(const char *body, size_t len, char *out, size_t size)
{
	if (size == 0)
		return;
	cJSON *root;
	if (ft_json_parse(body, len, &root, NULL) == 0) {
		const cJSON *msg = ft_json_path(root, "error.message");
		if (!cJSON_IsString(msg))
			msg = cJSON_GetObjectItemCaseSensitive(root, "message");
		if (cJSON_IsString(msg)) {
			excerpt(msg->valuestring, strlen(msg->valuestring), out, size);
			cJSON_Delete(root);
			return;
		}
		cJSON_Delete(root);
	}
	excerpt(body, len, out, size);
}

long ft_chat_estimate_tokens(const cJSON *messages)
{
	long tokens = 0;
	for (const cJSON *m = messages ? messages->child : NULL; m; m = m->next) {
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
		tokens += 4;
		if (!cJSON_IsString(c))
			continue;
		long ascii = 0;
		for (const unsigned char *p = (const unsigned char *)c->valuestring; *p; p++) {
			if (*p < 0x80)
				ascii++;
			else if ((*p & 0xC0) != 0x80)
				tokens++;   /* a non-ASCII character starts here */
		}
		tokens += (ascii + 3) / 4;
	}
	return tokens;
}
