#include "sample.h"

#include <stdlib.h>
#include <string.h>

#include "ft.h"
#include "json.h"

void ft_segments_init(struct ft_segments *s)
{
	s->v = NULL;
	s->n = s->cap = 0;
}

void ft_segments_release(struct ft_segments *s)
{
	free(s->v);
	ft_segments_init(s);
}

static int push(struct ft_segments *s, struct ft_segment seg)
{
	if (!seg.len)
		return FT_OK;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct ft_segment *v = realloc(s->v, cap * sizeof *v);
		if (!v)
			return FT_E_NOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = seg;
	return FT_OK;
}

int ft_segments_from_render(struct ft_segments *s, const struct ft_render *r)
{
	s->n = 0;
	size_t pos = 0;
	int rc = FT_OK;
	for (size_t i = 0; i < r->nspans && !rc; i++) {
		const struct ft_span *sp = &r->spans[i];
		if (sp->off > pos)
			rc = push(s, (struct ft_segment){ pos, sp->off - pos, NULL, false, false });
		if (!rc)
			rc = push(s, (struct ft_segment){ sp->off, sp->len, sp->origin,
							  (sp->flags & FT_SPAN_TRAIN) != 0,
							  (sp->flags & FT_SPAN_DATA) != 0 });
		pos = sp->off + sp->len;
	}
	if (!rc && pos < r->text.len)
		rc = push(s, (struct ft_segment){ pos, r->text.len - pos, NULL, false, false });
	return rc;
}

void ft_segments_merge(struct ft_segments *s)
{
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (k && s->v[k - 1].train == s->v[i].train && s->v[k - 1].data == s->v[i].data &&
		    s->v[k - 1].off + s->v[k - 1].len == s->v[i].off) {
			s->v[k - 1].len += s->v[i].len;
			s->v[k - 1].origin = NULL;
		} else {
			s->v[k++] = s->v[i];
		}
	}
	s->n = k;
}

int ft_sample_write_segments(struct ft_buf *b, const char *text, const struct ft_segment *segs,
			     size_t from, size_t to, bool untrain)
{
	int rc = ft_buf_puts(b, "\"segments\":[");
	bool first = true;
	for (size_t i = from; i < to && !rc; i++) {
		/* merge neighbours that become equal once training is forced off */
		size_t off = segs[i].off, len = segs[i].len;
		bool train = segs[i].train && !untrain, data = segs[i].data;
		while (i + 1 < to && segs[i + 1].data == data &&
		       (segs[i + 1].train && !untrain) == train && segs[i + 1].off == off + len) {
			len += segs[++i].len;
		}
		if (!first)
			rc = ft_buf_putc(b, ',');
		first = false;
		if (!rc)
			rc = ft_buf_puts(b, "{\"text\":");
		if (!rc)
			rc = ft_json_write_string(b, text + off, len);
		if (!rc)
			rc = ft_buf_puts(b, train ? ",\"train\":true" : ",\"train\":false");
		if (!rc)
			rc = ft_buf_puts(b, data ? ",\"template\":false}" : ",\"template\":true}");
	}
	return rc ? rc : ft_buf_putc(b, ']');
}

static int read_flag(const cJSON *seg, const char *name, size_t i, bool *out, struct ft_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(seg, name);
	if (!v) {
		*out = false;
		return 0;
	}
	if (!cJSON_IsBool(v))
		return ft_err_set(err, FT_E_DATA, "segments[%zu].%s: expected true or false", i, name);
	*out = cJSON_IsTrue(v);
	return 0;
}

int ft_sample_read(const cJSON *rec, struct ft_buf *text, struct ft_segments *s,
		   struct ft_err *err)
{
	ft_buf_reset(text);
	s->n = 0;
	if (!cJSON_IsObject(rec))
		return ft_err_set(err, FT_E_DATA, "expected a JSON object");
	const cJSON *segs = cJSON_GetObjectItemCaseSensitive(rec, "segments");
	if (!segs) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec, "text");
		if (!t)
			return ft_err_set(err, FT_E_DATA,
					  "no 'segments' (a sample from ft-template) and no 'text'");
		if (!cJSON_IsString(t))
			return ft_err_set(err, FT_E_DATA, "'text' is not a string");
		size_t len = strlen(t->valuestring);
		if (ft_buf_append(text, t->valuestring, len) ||
		    push(s, (struct ft_segment){ .off = 0, .len = len, .train = true, .data = true }))
			return ft_err_set(err, FT_E_NOMEM, "out of memory");
		return 0;
	}
	if (!cJSON_IsArray(segs))
		return ft_err_set(err, FT_E_DATA, "'segments' is not an array");
	size_t i = 0;
	for (const cJSON *seg = segs->child; seg; seg = seg->next, i++) {
		if (!cJSON_IsObject(seg))
			return ft_err_set(err, FT_E_DATA, "segments[%zu]: expected an object", i);
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(seg, "text");
		if (!cJSON_IsString(t))
			return ft_err_set(err, FT_E_DATA, "segments[%zu].text: %s", i,
					  t ? "expected a string" : "missing");
		bool train, templ;
		if (read_flag(seg, "train", i, &train, err) || read_flag(seg, "template", i, &templ, err))
			return err ? err->code : FT_E_DATA;
		size_t len = strlen(t->valuestring), off = text->len;
		if (ft_buf_append(text, t->valuestring, len))
			return ft_err_set(err, FT_E_TOOBIG, "sample text is too long");
		if (push(s, (struct ft_segment){ .off = off, .len = len, .train = train, .data = !templ }))
			return ft_err_set(err, FT_E_NOMEM, "out of memory");
	}
	return 0;
}
