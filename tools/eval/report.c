/* report.c: sums per group, the metrics from them, the table and the JSON. */
#include <stdlib.h>
#include <string.h>

#include "ft.h"
#include "hash.h"
#include "json.h"
#include "report.h"

const char *const turn_kind_names[KIND_COUNT] = { "search", "assistant", "other" };

/* ---- sums and metrics -------------------------------------------------- */

void stats_add(struct stats *st, const struct turn *t)
{
	st->turns++;
	st->exact += t->exact;
	st->kind_turns[t->kind]++;
	if (t->kind == KIND_SEARCH) {
		st->unparsable += !t->parsed;
		st->slots.correct += t->slots.correct;
		st->slots.predicted += t->slots.predicted;
		st->slots.truth += t->slots.truth;
	} else if (t->kind == KIND_ASSISTANT) {
		st->not_reply += !t->reply;
		st->bleu_sum += t->bleu;
	}
}

/* part/whole, 0 for an empty whole */
static double ratio(unsigned long long part, unsigned long long whole)
{
	return whole ? (double)part / (double)whole : 0.0;
}

bool stats_exact_match(const struct stats *st, double *v)
{
	*v = ratio(st->exact, st->turns);
	return st->turns > 0;
}

bool stats_slot_p(const struct stats *st, double *v)
{
	*v = ratio(st->slots.correct, st->slots.predicted);
	return st->kind_turns[KIND_SEARCH] > 0;
}

bool stats_slot_r(const struct stats *st, double *v)
{
	*v = ratio(st->slots.correct, st->slots.truth);
	return st->kind_turns[KIND_SEARCH] > 0;
}

bool stats_slot_f1(const struct stats *st, double *v)
{
	double p, r;
	stats_slot_p(st, &p);
	stats_slot_r(st, &r);
	*v = p + r > 0 ? 2.0 * p * r / (p + r) : 0.0;
	return st->kind_turns[KIND_SEARCH] > 0;
}

bool stats_bleu(const struct stats *st, double *v)
{
	unsigned long long n = st->kind_turns[KIND_ASSISTANT];
	*v = n ? st->bleu_sum / (double)n : 0.0;
	return n > 0;
}

/* ---- breakdowns -------------------------------------------------------- */

void breakdown_init(struct breakdown *b, const char *field)
{
	memset(b, 0, sizeof *b);
	b->field = field;
	ft_arena_init(&b->keys, 0);
}

void breakdown_release(struct breakdown *b)
{
	free(b->groups);
	free(b->index);
	ft_arena_release(&b->keys);
}

static uint64_t key_hash(const char *key, size_t len)
{
	return ft_hash_siphash(key, len, 0, 0);
}

static int reindex(struct breakdown *b, size_t nslots)
{
	uint32_t *index = calloc(nslots, sizeof *index);
	if (!index)
		return FT_E_NOMEM;
	for (size_t i = 0; i < b->count; i++) {
		size_t j = key_hash(b->groups[i].key, b->groups[i].key_len) & (nslots - 1);
		while (index[j])
			j = (j + 1) & (nslots - 1);
		index[j] = (uint32_t)(i + 1);
	}
	free(b->index);
	b->index = index;
	b->nslots = nslots;
	return FT_OK;
}

/* The group of key, added if new; NULL when out of memory. */
static struct group *find_group(struct breakdown *b, const char *key, size_t len,
				const cJSON *value)
{
	if (2 * (b->count + 1) > b->nslots && reindex(b, b->nslots ? 2 * b->nslots : 64))
		return NULL;
	size_t j = key_hash(key, len) & (b->nslots - 1);
	for (; b->index[j]; j = (j + 1) & (b->nslots - 1)) {
		struct group *gr = &b->groups[b->index[j] - 1];
		if (gr->key_len == len && memcmp(gr->key, key, len) == 0)
			return gr;
	}
	if (b->count == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 16;
		struct group *groups = realloc(b->groups, cap * sizeof *groups);
		if (!groups)
			return NULL;
		b->groups = groups;
		b->cap = cap;
	}
	struct group *gr = &b->groups[b->count];
	memset(gr, 0, sizeof *gr);
	gr->key = ft_arena_strndup(&b->keys, key, len);
	if (!gr->key)
		return NULL;
	gr->key_len = len;
	gr->is_number = value && cJSON_IsNumber(value);
	gr->number = gr->is_number ? value->valuedouble : 0.0;
	b->index[j] = (uint32_t)++b->count;
	return gr;
}

int breakdown_add(struct breakdown *b, const cJSON *rec, const struct turn *t)
{
	const cJSON *value = ft_json_path(rec, b->field);
	struct ft_buf key;
	ft_buf_init(&key, 0);
	int rc = value ? ft_json_write(&key, value) : ft_buf_puts(&key, "null");
	struct group *gr = rc ? NULL : find_group(b, key.data, key.len, value);
	ft_buf_release(&key);
	if (!gr)
		return FT_E_NOMEM;
	stats_add(&gr->st, t);
	return FT_OK;
}

static int group_order(const void *a, const void *b)
{
	const struct group *x = a, *y = b;
	if (x->is_number != y->is_number)
		return x->is_number ? -1 : 1;
	if (x->is_number && x->number != y->number)
		return x->number < y->number ? -1 : 1;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);
	if (c)
		return c;
	return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

void breakdown_sort(struct breakdown *b)
{
	if (b->count > 1)
		qsort(b->groups, b->count, sizeof *b->groups, group_order);
	free(b->index);   /* positions changed; no more lookups after sorting */
	b->index = NULL;
	b->nslots = 0;
}

/* ---- the table --------------------------------------------------------- */

static const char table_head[] =
	"  turns  search  assistant  other   exact  unparsable  slot P  slot R  slot F1"
	"  BLEU-4  group\n";

/* A percentage with 2 decimals in width w, or "-" when undefined. */
static int put_percent(struct ft_buf *out, int w, bool defined, double v)
{
	if (!defined)
		return ft_buf_printf(out, "%*s", w, "-");
	return ft_buf_printf(out, "%*.2f", w, 100.0 * v);
}

/* A group's label: a string's text, any other value's JSON. */
static int put_label(struct ft_buf *out, const char *field, const char *key, size_t len)
{
	if (len >= 2 && key[0] == '"') {
		cJSON *v;
		if (ft_json_parse(key, len, &v, NULL) == FT_OK) {
			int rc = ft_buf_printf(out, "%s=%s", field, v->valuestring);
			cJSON_Delete(v);
			return rc;
		}
	}
	return ft_buf_printf(out, "%s=%.*s", field, (int)len, key);
}

static int put_row(struct ft_buf *out, const struct stats *st)
{
	double v;
	int rc = ft_buf_printf(out, "%7llu %7llu %10llu %6llu", st->turns,
			       st->kind_turns[KIND_SEARCH], st->kind_turns[KIND_ASSISTANT],
			       st->kind_turns[KIND_OTHER]);
	bool d = stats_exact_match(st, &v);
	rc = rc ? rc : put_percent(out, 8, d, v);
	if (!rc && st->kind_turns[KIND_SEARCH])
		rc = ft_buf_printf(out, "%12llu", st->unparsable);
	else if (!rc)
		rc = ft_buf_printf(out, "%12s", "-");
	d = stats_slot_p(st, &v);
	rc = rc ? rc : put_percent(out, 8, d, v);
	d = stats_slot_r(st, &v);
	rc = rc ? rc : put_percent(out, 8, d, v);
	d = stats_slot_f1(st, &v);
	rc = rc ? rc : put_percent(out, 9, d, v);
	d = stats_bleu(st, &v);
	rc = rc ? rc : put_percent(out, 8, d, v);
	return rc ? rc : ft_buf_puts(out, "  ");
}

int report_write_table(struct ft_buf *out, const struct report *r)
{
	int rc = ft_buf_puts(out, table_head);
	rc = rc ? rc : put_row(out, &r->total);
	rc = rc ? rc : ft_buf_puts(out, "all\n");
	for (int k = 0; k < KIND_COUNT && !rc; k++) {
		rc = put_row(out, &r->kinds[k]);
		rc = rc ? rc : ft_buf_printf(out, "kind=%s\n", turn_kind_names[k]);
	}
	for (size_t i = 0; i < r->nby && !rc; i++) {
		const struct breakdown *b = &r->by[i];
		for (size_t j = 0; j < b->count && !rc; j++) {
			const struct group *gr = &b->groups[j];
			rc = put_row(out, &gr->st);
			rc = rc ? rc : put_label(out, b->field, gr->key, gr->key_len);
			rc = rc ? rc : ft_buf_putc(out, '\n');
		}
	}
	return rc;
}

/* ---- JSON -------------------------------------------------------------- */

/* "name":value, with null for an undefined metric */
static int put_metric(struct ft_buf *out, const char *name, bool defined, double v)
{
	if (!defined)
		return ft_buf_printf(out, ",\"%s\":null", name);
	char num[32];
	ft_fmt_jsonfloat(v, num);
	return ft_buf_printf(out, ",\"%s\":%s", name, num);
}

/* The members of one stats, without braces. */
static int put_stats(struct ft_buf *out, const struct stats *st)
{
	double v;
	int rc = ft_buf_printf(out,
		"\"turns\":%llu,\"search\":%llu,\"assistant\":%llu,\"other\":%llu"
		",\"exact\":%llu,\"unparsable\":%llu,\"slot_correct\":%llu"
		",\"slot_predicted\":%llu,\"slot_true\":%llu,\"not_reply\":%llu",
		st->turns, st->kind_turns[KIND_SEARCH], st->kind_turns[KIND_ASSISTANT],
		st->kind_turns[KIND_OTHER], st->exact, st->unparsable, st->slots.correct,
		st->slots.predicted, st->slots.truth, st->not_reply);
	bool d = stats_exact_match(st, &v);
	rc = rc ? rc : put_metric(out, "exact_match", d, v);
	d = stats_slot_p(st, &v);
	rc = rc ? rc : put_metric(out, "slot_p", d, v);
	d = stats_slot_r(st, &v);
	rc = rc ? rc : put_metric(out, "slot_r", d, v);
	d = stats_slot_f1(st, &v);
	rc = rc ? rc : put_metric(out, "slot_f1", d, v);
	d = stats_bleu(st, &v);
	rc = rc ? rc : put_metric(out, "bleu4", d, v);
	return rc;
}

static int put_breakdown(struct ft_buf *out, const struct breakdown *b)
{
	int rc = ft_json_write_string(out, b->field, strlen(b->field));
	rc = rc ? rc : ft_buf_puts(out, ":[");
	for (size_t j = 0; j < b->count && !rc; j++) {
		const struct group *gr = &b->groups[j];
		rc = ft_buf_printf(out, "%s{\"value\":%.*s,", j ? "," : "", (int)gr->key_len, gr->key);
		rc = rc ? rc : put_stats(out, &gr->st);
		rc = rc ? rc : ft_buf_putc(out, '}');
	}
	return rc ? rc : ft_buf_putc(out, ']');
}

int report_write_json(struct ft_buf *out, const struct report *r)
{
	int rc = ft_buf_printf(out, "{\"bad\":%llu,", r->bad);
	rc = rc ? rc : put_stats(out, &r->total);
	rc = rc ? rc : ft_buf_puts(out, ",\"kind\":{");
	for (int k = 0; k < KIND_COUNT && !rc; k++) {
		rc = ft_buf_printf(out, "%s\"%s\":{", k ? "," : "", turn_kind_names[k]);
		rc = rc ? rc : put_stats(out, &r->kinds[k]);
		rc = rc ? rc : ft_buf_putc(out, '}');
	}
	rc = rc ? rc : ft_buf_puts(out, "},\"by\":{");
	for (size_t i = 0; i < r->nby && !rc; i++) {
		rc = i ? ft_buf_putc(out, ',') : 0;
		rc = rc ? rc : put_breakdown(out, &r->by[i]);
	}
	return rc ? rc : ft_buf_puts(out, "}}\n");
}

int report_write_turn(struct ft_buf *out, const cJSON *id, const struct turn *t)
{
	int rc = ft_buf_puts(out, "{\"id\":");
	rc = rc ? rc : id ? ft_json_write(out, id) : ft_buf_puts(out, "null");
	rc = rc ? rc : ft_buf_printf(out, ",\"kind\":\"%s\",\"exact\":%s", turn_kind_names[t->kind],
				     t->exact ? "true" : "false");
	if (rc)
		return rc;
	if (t->kind == KIND_SEARCH)
		return ft_buf_printf(out, ",\"parsed\":%s,\"slot_correct\":%llu"
				     ",\"slot_predicted\":%llu,\"slot_true\":%llu}",
				     t->parsed ? "true" : "false", t->slots.correct,
				     t->slots.predicted, t->slots.truth);
	if (t->kind == KIND_ASSISTANT) {
		char num[32];
		ft_fmt_jsonfloat(t->bleu, num);
		return ft_buf_printf(out, ",\"reply\":%s,\"bleu4\":%s}", t->reply ? "true" : "false",
				     num);
	}
	return ft_buf_putc(out, '}');
}
